// The WebSocket boundary as an attacker or a broken client sees it: malformed messages get an error
// reply and change nothing; a wrong token is refused; the app keeps working through all of it.
import { expect, test } from '@playwright/test';
import { baseUrl, framesDrawn, openApp, waitForFrames, wsUrl } from './helpers.js';

/** Open a second WebSocket from the page, send each payload, collect one decoded reply per payload. */
async function exchange(page: import('@playwright/test').Page, url: string, payloads: (number[] | string)[]) {
  return page.evaluate(
    ({ url, payloads }) =>
      new Promise<{ opened: boolean; closeCode: number | null; replies: unknown[] }>((resolve) => {
        const ws = new WebSocket(url);
        ws.binaryType = 'arraybuffer';
        const replies: unknown[] = [];
        let opened = false;
        const done = (closeCode: number | null) => resolve({ opened, closeCode, replies });
        ws.onopen = () => {
          opened = true;
          for (const p of payloads) ws.send(typeof p === 'string' ? p : new Uint8Array(p));
        };
        ws.onmessage = (ev) => {
          // contract/wire.ts framing: [u32 LE header length][header JSON]…
          const bytes = new Uint8Array(ev.data as ArrayBuffer);
          const len = new DataView(bytes.buffer).getUint32(0, true);
          replies.push(JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + len))));
          if (replies.length === payloads.length) {
            ws.close();
            done(null);
          }
        };
        ws.onclose = (ev) => done(ev.code);
        setTimeout(() => done(-1), 10_000);
      }),
    { url, payloads },
  );
}

/** A well-framed contract message (header only) as bytes. */
function framed(header: unknown): number[] {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + json.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  return [...out];
}

test('malformed WebSocket messages get error replies and the app keeps working', async ({ page }) => {
  await openApp(page);
  await waitForFrames(page, 3);
  const r = await exchange(page, wsUrl(), [
    [1, 2, 3], // too short to be a message
    [255, 255, 255, 255, 0, 0, 0, 0], // absurd header length
    framed({ type: 'frame', frameId: -1, width: 5 }), // decodes, fails validation
    framed({ type: 'rm -rf', seq: 7 }), // unknown request type
    'not binary', // text frame
  ]);
  expect(r.opened).toBe(true);
  expect(r.replies).toHaveLength(5);
  for (const reply of r.replies) expect(reply).toMatchObject({ type: 'error', message: expect.stringMatching(/invalid message/) });

  // The app's own connection and the engine are unaffected.
  const n = await framesDrawn(page);
  await waitForFrames(page, 5);
  expect(await framesDrawn(page)).toBeGreaterThan(n);
  await expect(page.getByTestId('error-connection')).toHaveCount(0);
  await expect(page.getByTestId('error-engine')).toHaveCount(0);
  await expect.poll(async () => parseFloat((await page.getByTestId('status-fps').textContent()) ?? '0')).toBeGreaterThan(0);
});

test('a wrong or missing token is refused', async ({ page }) => {
  await openApp(page);
  const wrong = await exchange(page, wsUrl('not-the-token'), [framed({ type: 'hello' })]);
  expect(wrong.opened, JSON.stringify(wrong)).toBe(false);
  expect(wrong.replies).toHaveLength(0);
  const none = await exchange(page, wsUrl('').replace('?token=', ''), [framed({ type: 'hello' })]);
  expect(none.opened, JSON.stringify(none)).toBe(false);
  // Control: the right token is accepted and answers hello.
  const right = await exchange(page, wsUrl(), [framed({ type: 'hello', seq: 1 })]);
  expect(right.opened, JSON.stringify(right)).toBe(true);
  expect(right.replies[0], JSON.stringify(right)).toMatchObject({ type: 'hello', seq: 1 });
  // The app itself keeps running.
  await waitForFrames(page, 3);
});

test('the app opened with a wrong token says it cannot reach the engine', async ({ page }) => {
  const u = new URL(baseUrl());
  u.searchParams.set('token', 'wrong');
  await page.goto(u.href);
  await expect(page.getByTestId('error-connection')).toContainText(/cannot connect to the engine/);
  expect(await framesDrawn(page)).toBe(0);
});
