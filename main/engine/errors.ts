// Every message we show is one line: the first non-empty line of an error's message, trimmed.
export function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split('\n').find((l) => l.trim()) ?? msg).trim();
}
