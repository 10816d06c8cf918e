// A virtual I2C bus that behaves like the wire: devices see the bytes of each transfer in
// wire order, SMBus words are assembled low byte first, and an address nobody answers
// fails like Linux reports a missing ACK (EREMOTEIO). Faults can be injected per address.
import type { I2cBus } from '../i2c.js';

/** A device model on the virtual bus, seen at the level of bytes on the wire. */
export interface VirtualI2cDevice {
  /** A write transfer: the bytes after the address byte (register pointer first). */
  write(bytes: readonly number[]): void;
  /** A read transfer of `length` bytes, after any pointer write. */
  read(length: number): number[];
}

function busError(code: 'EREMOTEIO' | 'EIO', errno: number, what: string): Error {
  const text = code === 'EREMOTEIO' ? 'Remote I/O error' : 'Input/output error';
  return Object.assign(new Error(`${code}, ${text} (${what})`), { code, errno });
}

export class VirtualI2cBus implements I2cBus {
  private readonly devices = new Map<number, VirtualI2cDevice>();
  private readonly absent = new Set<number>();
  private readonly failingReads = new Map<number, number>();
  private closed = false;
  /** Transfers attempted, per address (for tests). */
  readonly transfers = new Map<number, number>();

  attach(address: number, device: VirtualI2cDevice): void {
    if (this.devices.has(address)) throw new Error(`virtual I2C address 0x${address.toString(16)} is already taken`);
    this.devices.set(address, device);
  }

  /** Fault: the device stops acknowledging (unplugged, dead, lost power) until restored. */
  setAbsent(address: number, absent: boolean): void {
    if (absent) this.absent.add(address);
    else this.absent.delete(address);
  }

  /** Fault: the next `count` read transfers to `address` fail with EIO (Infinity: until cleared with 0). */
  failReads(address: number, count: number): void {
    if (count > 0) this.failingReads.set(address, count);
    else this.failingReads.delete(address);
  }

  async readByte(address: number, command: number): Promise<number> {
    return this.transfer(address, [command], 1)[0]!;
  }

  async writeByte(address: number, command: number, byte: number): Promise<void> {
    this.transfer(address, [command, byte & 0xff], 0);
  }

  async readWord(address: number, command: number): Promise<number> {
    const [lo, hi] = this.transfer(address, [command], 2);
    return lo! | (hi! << 8); // SMBus: first byte received is the low byte
  }

  async writeWord(address: number, command: number, word: number): Promise<void> {
    this.transfer(address, [command, word & 0xff, (word >> 8) & 0xff], 0); // low byte first
  }

  async readI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesRead: number; buffer: Buffer }> {
    checkBlock(length, buffer);
    const bytes = this.transfer(address, [command], length);
    bytes.forEach((b, i) => { buffer[i] = b; });
    return { bytesRead: length, buffer };
  }

  async writeI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number; buffer: Buffer }> {
    checkBlock(length, buffer);
    this.transfer(address, [command, ...buffer.subarray(0, length)], 0);
    return { bytesWritten: length, buffer };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private transfer(address: number, written: number[], readLength: number): number[] {
    if (this.closed) throw new Error('virtual I2C bus is closed');
    this.transfers.set(address, (this.transfers.get(address) ?? 0) + 1);
    const device = this.devices.get(address);
    const where = `address 0x${address.toString(16)}`;
    if (!device || this.absent.has(address)) throw busError('EREMOTEIO', -121, `no ACK from ${where}`);
    if (readLength > 0) {
      const left = this.failingReads.get(address) ?? 0;
      if (left > 0) {
        this.failingReads.set(address, left - 1);
        throw busError('EIO', -5, `read from ${where}`);
      }
    }
    device.write(written);
    return readLength > 0 ? device.read(readLength) : [];
  }
}

function checkBlock(length: number, buffer: Buffer): void {
  // i2c-bus's limits: 1..32 bytes and a buffer that holds them.
  if (!Number.isInteger(length) || length < 1 || length > 32 || buffer.length < length) {
    throw new RangeError(`I2C block length must be 1..32 and fit the buffer, got ${length} (buffer ${buffer.length})`);
  }
}
