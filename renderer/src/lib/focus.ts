// Which focused elements take typed keys for themselves (so the toolbox's single-key commands
// must not fire while they have the focus).

const TEXT_INPUTS = new Set(['text', 'search', 'number', 'email', 'url', 'password', 'tel']);

export function isTextEntry(el: Element | null): el is HTMLInputElement | HTMLTextAreaElement {
  if (!el) return false;
  if (el.tagName === 'TEXTAREA') return true;
  if (el.tagName !== 'INPUT') return false;
  return TEXT_INPUTS.has((el as HTMLInputElement).type);
}
