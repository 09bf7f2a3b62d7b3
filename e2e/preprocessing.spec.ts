// One preprocessing path: a photo opened in the window (web mode; the desktop window runs the same
// renderer and engine code) and the same file given to `deepvis classify` get the same input
// pixels, so the same top-5 probabilities (within 0.5 percentage points; the window shows one
// decimal).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { photo, REPO } from '../tests/support/fixtures.js';
import { openApp } from './helpers.js';

const MODEL = 'mobilenet-v1-0.75';
const FILES = ['kite', 'dog', 'eagle', 'scream'] as const;

type Top = { wnid: string | null; name: string; prob: number };

test(`window and deepvis classify agree on the top-5 of ${FILES.join(', ')} (${MODEL}, within 0.5 %)`, async ({ page }) => {
  test.setTimeout(240_000);
  const paths = FILES.map((f) => photo(f));
  const cli = JSON.parse(
    execFileSync(process.execPath, [join(REPO, 'bin/deepvis.mjs'), 'classify', '--model', MODEL, '--json', ...paths], { cwd: REPO, encoding: 'utf8', timeout: 180_000 }),
  ) as { results: { image: string; top5: Top[] }[] };

  await openApp(page, { model: MODEL });
  await page.getByTestId('file-input').setInputFiles(paths);
  const sorted = [...FILES].sort();
  for (let i = 0; i < sorted.length; i++) {
    const name = sorted[i]!;
    await expect(page.getByTestId('status-mode')).toHaveText(`static ${i + 1}/${sorted.length} ${name}.jpg`);
    const want = cli.results.find((r) => r.image.endsWith(`/${name}.jpg`))!.top5;
    // The top-5 of this image (not the previous one's): its top-1 class shows first.
    await expect(page.getByTestId('top5-item').first()).toHaveAttribute('title', want[0]!.wnid ?? '', { timeout: 30_000 });
    const shown = await page.getByTestId('top5-item').evaluateAll((items) =>
      items.map((li) => ({ wnid: li.getAttribute('title'), prob: parseFloat(li.querySelector('.prob')!.textContent!) / 100 })),
    );
    expect(shown).toHaveLength(5);
    const fifth = shown[4]!.prob;
    for (const c of want) {
      const w = shown.find((s) => s.wnid === c.wnid);
      if (w) expect(Math.abs(w.prob - c.prob), `${name}: ${c.name} window ${w.prob} vs CLI ${c.prob}`).toBeLessThanOrEqual(0.005);
      // A near-tie may swap the fifth place; then the CLI's class is no likelier than the window's fifth.
      else expect(c.prob, `${name}: ${c.name} (CLI ${c.prob}) missing from the window's top-5`).toBeLessThanOrEqual(fifth + 0.005);
    }
    if (i + 1 < sorted.length) await page.keyboard.press('e');
  }
});
