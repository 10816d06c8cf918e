// Generated text as it streams: token ids to text pieces, and the request's stop
// sequences. Generation ends before the first stop sequence appears, so text that might be
// the start of one is held back until the next tokens show it is not (the stream never
// shows what the final text will not contain).
import { TokenStream, type Tokenizer } from '../../models/tokenizers/index.js';
import type { TokenEvent } from '../jobs.js';

export interface Pushed {
  /** Tokens whose text is now certain, in order. */
  events: TokenEvent[];
  /** A stop sequence appeared: generation ends here. */
  stopped: boolean;
}

export class StopText {
  private readonly stream: TokenStream | undefined;
  private readonly stops: string[];
  private readonly longestStop: number;
  private full = '';
  private emitted = 0;
  private held: TokenEvent[] = [];
  private cut: number | undefined;

  constructor(tokenizer: Tokenizer | undefined, stops: readonly string[]) {
    this.stream = tokenizer ? new TokenStream(tokenizer) : undefined;
    // Without a tokenizer there is no text, so no stop sequence can match.
    this.stops = tokenizer ? stops.filter((s) => s.length > 0) : [];
    this.longestStop = Math.max(0, ...this.stops.map((s) => s.length));
  }

  /** The final text (up to the stop sequence, when one came). */
  get text(): string {
    return this.cut === undefined ? this.full : this.full.slice(0, this.cut);
  }

  push(index: number, id: number): Pushed {
    const piece = this.stream?.push(id) ?? '';
    this.full += piece;
    this.held.push({ index, id, text: piece });
    if (this.stops.length === 0) return { events: this.release(this.full.length), stopped: false };
    // A new match can only start within the last (longest stop) characters before this piece.
    const from = Math.max(0, this.full.length - piece.length - this.longestStop + 1);
    let at = -1;
    for (const s of this.stops) {
      const i = this.full.indexOf(s, from);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.cut = at;
      return { events: this.release(at, true), stopped: true };
    }
    return { events: this.release(this.full.length - this.pendingPrefix()), stopped: false };
  }

  /** Generation ended without a stop sequence: everything held is final. */
  end(): TokenEvent[] {
    const tail = this.stream?.end() ?? '';
    this.full += tail;
    const last = this.held.at(-1);
    if (last) last.text += tail;
    return this.release(this.full.length);
  }

  /** Length of the longest suffix of the text that begins some stop sequence. */
  private pendingPrefix(): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.full.length); n > best; n--) {
        if (this.full.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }

  /** Emits held tokens whose text ends at or before `upTo`; with `truncate`, the one crossing it is cut. */
  private release(upTo: number, truncate = false): TokenEvent[] {
    const out: TokenEvent[] = [];
    while (this.held.length > 0) {
      const t = this.held[0]!;
      const end = this.emitted + t.text.length;
      if (end <= upTo) {
        out.push(t);
      } else if (truncate && this.emitted < upTo) {
        out.push({ ...t, text: t.text.slice(0, upTo - this.emitted) });
      } else {
        break;
      }
      this.emitted = Math.min(end, upTo);
      this.held.shift();
    }
    if (truncate) this.held = [];
    return out;
  }
}
