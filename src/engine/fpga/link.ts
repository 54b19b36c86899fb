/**
 * The byte link to a bridge: a serial port (a USB CDC/UART device, or a pty such as
 * `bridge-host --link PATH` offers) carrying packets. Emits 'packet' for every intact packet and
 * 'close' once when the port goes away (unplugged, closed, or failed).
 */
import { EventEmitter } from 'node:events';
import { SerialPort } from 'serialport';
import { ZeroqError } from '../../util/errors.js';
import { FrameDecoder, type Packet } from './framing.js';

export interface LinkCounters {
  bytesOut: number;
  bytesIn: number;
}

export class SerialLink extends EventEmitter {
  readonly counters: LinkCounters = { bytesOut: 0, bytesIn: 0 };
  readonly decoder: FrameDecoder;
  private closed = false;
  private unwritten = 0;

  private constructor(
    private readonly port: SerialPort,
    readonly path: string,
    maxPayload: number,
  ) {
    super();
    this.decoder = new FrameDecoder(maxPayload);
    port.on('data', (chunk: Buffer) => {
      this.counters.bytesIn += chunk.length;
      for (const p of this.decoder.push(chunk)) this.emit('packet', p);
    });
    port.on('close', () => this.gone('closed'));
    port.on('error', (e: Error) => this.gone(e.message));
  }

  /** Opens `path` (8N1, no flow control; `baud` matters only to a real UART). */
  static open(path: string, baud: number, maxPayload = 65535): Promise<SerialLink> {
    return new Promise((resolve, reject) => {
      const port = new SerialPort({ path, baudRate: baud, autoOpen: false, hupcl: false });
      port.open((err) => {
        if (err) {
          reject(new ZeroqError('fpga-open', err.message, path, { cause: err }));
          return;
        }
        resolve(new SerialLink(port, path, maxPayload));
      });
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  send(wire: Buffer): void {
    if (this.closed) throw new ZeroqError('fpga-link-closed', 'the link is closed', this.path);
    this.counters.bytesOut += wire.length;
    this.unwritten++;
    this.port.write(wire, () => this.unwritten--);
  }

  /** Writes handed to the port that it has not completed: a port that hung up keeps them forever. */
  get backlog(): number {
    return this.unwritten;
  }

  /** Forgets a partially received packet. */
  flushInput(): void {
    this.decoder.reset();
  }

  private gone(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close', reason);
    if (this.port.isOpen) this.port.close(() => undefined);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      const wasOpen = this.port.isOpen;
      this.gone('closed by the host');
      if (!wasOpen) {
        resolve();
        return;
      }
      // The port's own close (above) may still be running: wait for its event or a short while.
      const t = setTimeout(resolve, 200);
      this.port.once('close', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

export type { Packet };
