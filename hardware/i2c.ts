// The I2C bus as the drivers see it: the promise-based subset of `i2c-bus`'s
// PromisifiedBus that they use. The real bus wraps `i2c-bus`; the virtual bus
// (hardware/virtual/bus.ts) answers like the wire, byte order and missing ACKs included.
import { access, constants } from 'node:fs/promises';

export interface I2cBus {
  /** SMBus read byte: register `command`, one byte. */
  readByte(address: number, command: number): Promise<number>;
  writeByte(address: number, command: number, byte: number): Promise<void>;
  /**
   * SMBus read word: the first byte on the wire is the LOW byte of the result (SMBus
   * 3.0 §6.5.5). Devices that send MSB first, like the INA219, need a byte swap.
   */
  readWord(address: number, command: number): Promise<number>;
  /** SMBus write word: the low byte of `word` goes on the wire first. */
  writeWord(address: number, command: number, word: number): Promise<void>;
  readI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesRead: number; buffer: Buffer }>;
  writeI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number; buffer: Buffer }>;
  close(): Promise<void>;
}

/** Swaps the two bytes of a 16-bit word (SMBus little-endian <-> big-endian device). */
export function swap16(word: number): number {
  return ((word & 0xff) << 8) | ((word >> 8) & 0xff);
}

/** Linux reports a missing ACK from the addressed device as EREMOTEIO (errno 121). */
export function isNoAck(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  return !!e && (e.code === 'EREMOTEIO' || e.errno === -121 || e.errno === 121);
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** A device on the bus as its driver presents it in errors. */
export interface I2cDevice {
  /** How errors name it, e.g. "battery INA219 at 0x41". */
  readonly where: string;
  /** What to check when it does not ACK. */
  readonly absentHint: string;
  /** Extra attempts for a failed transfer before giving up. */
  readonly retries: number;
  /** The driver's own error: 'absent' for a device that does not ACK, 'bus' for any other failure. */
  fail(kind: 'absent' | 'bus', message: string, cause: unknown): Error;
}

/**
 * Runs one I2C transaction with `device`, retrying a failed one up to `device.retries`
 * times: a single corrupted transfer (EMI on a long solar cable, a clock-stretch timeout)
 * is common and harmless, a device that keeps failing is not, and then its last failure
 * becomes the driver's error, saying whether the device is missing or the bus failed.
 */
export async function transact<T>(device: I2cDevice, op: () => Promise<T>): Promise<T> {
  let last: unknown;
  for (let attempt = 0; attempt <= device.retries; attempt++) {
    try {
      return await op();
    } catch (err) {
      last = err;
    }
  }
  if (isNoAck(last)) throw device.fail('absent', `${device.where} does not answer (no ACK): ${device.absentHint}`, last);
  throw device.fail('bus', `${device.where}: I2C transfer failed after ${device.retries + 1} attempts: ${errorText(last)}`, last);
}

interface I2cBusModule {
  openPromisified(busNumber: number): Promise<I2cBus>;
}

/**
 * Opens /dev/i2c-<busNumber> through `i2c-bus`, loaded only now so that a machine without
 * the native module (or without I2C) can still run the virtual node.
 */
export async function openI2cBus(busNumber: number): Promise<I2cBus> {
  const specifier = 'i2c-bus';
  let mod: I2cBusModule;
  try {
    const loaded = (await import(specifier)) as Partial<I2cBusModule> & { default?: I2cBusModule };
    mod = loaded.openPromisified ? (loaded as I2cBusModule) : (loaded.default as I2cBusModule);
  } catch (err) {
    throw new Error(`cannot load the i2c-bus module (${errorText(err)}); on the Pi run \`npm install i2c-bus\`, or use the virtual node (--virtual)`);
  }
  const device = `/dev/i2c-${busNumber}`;
  try {
    // i2c-bus opens the device file lazily, at the first transfer; check it up front so
    // the error can say what to do.
    await access(device, constants.R_OK | constants.W_OK);
    return await mod.openPromisified(busNumber);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT') {
      throw new Error(`${device} does not exist: enable I2C with \`sudo raspi-config nonint do_i2c 0\` (or dtparam=i2c_arm=on in /boot/firmware/config.txt) and reboot`);
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new Error(`no permission to open ${device}: add the service user to the i2c group (\`sudo usermod -aG i2c $USER\`) and log in again`);
    }
    throw new Error(`cannot open ${device}: ${errorText(err)}`);
  }
}
