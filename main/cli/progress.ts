// A progress line on stderr: "label  37% ███████░░░░░░░░ 370/1000  12.1 s  ETA 20 s  <extra>".
// On a terminal it rewrites one line; otherwise (CI, pipes) it prints a plain line every few
// seconds so logs stay short.
export class ProgressLine {
  private readonly t0 = performance.now();
  private lastPlain = -Infinity;
  private lastDone = -1;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(
    private readonly label: string,
    private readonly total: number,
  ) {}

  update(done: number, extra = ''): void {
    const now = performance.now();
    if (!this.tty && ((now - this.lastPlain < 5000 && done < this.total) || done === this.lastDone)) return;
    this.lastPlain = now;
    this.lastDone = done;
    const elapsed = (now - this.t0) / 1000;
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 1;
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : NaN;
    const width = 20;
    const bar = '█'.repeat(Math.round(frac * width)).padEnd(width, '░');
    const line = `${this.label} ${String(Math.round(frac * 100)).padStart(3)}% ${bar} ${done}/${this.total}  ${fmt(elapsed)}  ETA ${Number.isFinite(eta) ? fmt(eta) : '…'}${extra ? '  ' + extra : ''}`;
    process.stderr.write(this.tty ? `\r${line.slice(0, (process.stderr.columns ?? 120) - 1)}\x1b[K` : `${line}\n`);
  }

  done(extra = ''): void {
    this.update(this.total, extra);
    if (this.tty) process.stderr.write('\n');
  }
}

function fmt(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
