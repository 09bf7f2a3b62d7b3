// The window's column widths (the two splits a user drags, remembered across runs) and the
// presenter layout (`p`: the live grid and the selected unit's panes large, controls hidden).

const STORE_KEY = 'deepvis.layout';

/** Smallest widths (CSS px): the left column holds a readable input, each right column a 256 px picture plus padding. */
export const MIN_LEFT = 220;
export const MIN_RIGHT_COLUMN = 272;
export const MIN_CENTRE = 300;
const MAX_LEFT = 520;
const MAX_RIGHT_COLUMN = 640;

interface Stored {
  left: number | null;
  right: number | null;
}

function readStored(): Stored {
  try {
    const v = JSON.parse(localStorage.getItem(STORE_KEY) ?? 'null') as Partial<Stored> | null;
    const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
    return { left: num(v?.left), right: num(v?.right) };
  } catch {
    return { left: null, right: null };
  }
}

export class LayoutState {
  /** Left column width, or null for the default that follows the window size. */
  left = $state<number | null>(null);
  /** Width of each of the two right columns (back-projection, synthesis), or null for the default. */
  right = $state<number | null>(null);
  presenter = $state(false);

  constructor() {
    const s = readStored();
    this.left = s.left === null ? null : clamp(s.left, MIN_LEFT, MAX_LEFT);
    this.right = s.right === null ? null : clamp(s.right, MIN_RIGHT_COLUMN, MAX_RIGHT_COLUMN);
  }

  get style(): string {
    const parts: string[] = [];
    if (this.left !== null) parts.push(`--left: ${Math.round(this.left)}px`);
    if (this.right !== null) parts.push(`--right: ${Math.round(this.right)}px`);
    return parts.join('; ');
  }

  /**
   * Move a split to `x` (CSS px from the main area's left edge) in a main area `width` wide,
   * keeping every column at least its minimum.
   */
  drag(edge: 'left' | 'right', x: number, width: number, current: { left: number; right: number }, gap: number): void {
    if (edge === 'left') {
      const most = width - MIN_CENTRE - 2 * current.right - 4 * gap;
      this.left = clamp(x, MIN_LEFT, Math.max(MIN_LEFT, Math.min(MAX_LEFT, most)));
    } else {
      const column = (width - x - gap) / 2;
      const most = (width - current.left - MIN_CENTRE - 4 * gap) / 2;
      this.right = clamp(column, MIN_RIGHT_COLUMN, Math.max(MIN_RIGHT_COLUMN, Math.min(MAX_RIGHT_COLUMN, most)));
    }
    this.save();
  }

  reset(): void {
    this.left = this.right = null;
    this.save();
  }

  private save(): void {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify({ left: this.left, right: this.right }));
    } catch {
      // Storage full or disabled: the split still applies to this run.
    }
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, v));
}
