/**
 * systemd notifications (READY=1, WATCHDOG=1, RELOADING=1, STOPPING=1, STATUS=...) through the
 * `systemd-notify` binary: Node has no AF_UNIX datagram sockets, and systemd-notify waits (a
 * barrier) until systemd processed the message, so the unit only needs NotifyAccess=all. See
 * docs/decisions/daemon-sd-notify.md. Without NOTIFY_SOCKET (not under systemd) nothing is sent.
 */
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';

export class SdNotify {
  readonly enabled: boolean;
  private watchdogTimer?: NodeJS.Timeout;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly binary = 'systemd-notify',
  ) {
    this.enabled = typeof env.NOTIFY_SOCKET === 'string' && env.NOTIFY_SOCKET.length > 0;
  }

  /** The watchdog interval systemd asked for (WATCHDOG_USEC), in ms, when it is meant for us. */
  watchdogMs(): number | undefined {
    const usec = Number(this.env.WATCHDOG_USEC);
    if (!Number.isFinite(usec) || usec <= 0) return undefined;
    const pid = this.env.WATCHDOG_PID;
    if (pid !== undefined && Number(pid) !== process.pid) return undefined;
    return usec / 1000;
  }

  /** Sends the assignments, in order with earlier calls; resolves when systemd-notify exited. */
  send(...assignments: string[]): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    const args = assignments;
    const run = () =>
      new Promise<void>((resolve) => {
        execFile(this.binary, args, { env: this.env, timeout: 10_000 }, (err, _out, stderr) => {
          if (err) this.log.warn({ err: err.message, stderr: String(stderr).trim(), args }, 'systemd-notify failed');
          resolve();
        });
      });
    this.chain = this.chain.then(run);
    return this.chain;
  }

  ready(status?: string): Promise<void> {
    return this.send('READY=1', ...(status ? [`STATUS=${status}`] : []));
  }

  reloading(): Promise<void> {
    // MONOTONIC_USEC lets systemd ≥ 253 (Type=notify-reload) match the reload; older ones ignore it.
    return this.send('RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
  }

  stopping(): Promise<void> {
    return this.send('STOPPING=1');
  }

  status(text: string): Promise<void> {
    return this.send(`STATUS=${text}`);
  }

  /**
   * Pings the watchdog at half its interval while alive() is true; a daemon whose frame loop is
   * stuck stops pinging and systemd restarts it.
   */
  startWatchdog(alive: () => boolean): void {
    const ms = this.watchdogMs();
    if (!this.enabled || ms === undefined) return;
    this.watchdogTimer = setInterval(() => {
      if (alive()) void this.send('WATCHDOG=1');
      else this.log.error('frame loop stuck; not pinging the systemd watchdog');
    }, Math.max(500, ms / 2));
    this.watchdogTimer.unref();
  }

  stopWatchdog(): void {
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }
}
