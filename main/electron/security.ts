// The Electron shell's security policy in one place a reviewer can read in a minute: the content
// security policy, who may use which permission, and the guard that keeps every web contents on the
// app page. Pure (no `electron` value import) so the decisions are plain functions; main.ts wires
// them into the session and tests/electron-security.test.ts holds the built bundle to them.
//
// The window's webPreferences stay written out in main.ts's `new BrowserWindow({...})` on purpose:
// the security scanner (scripts/security-scan.mjs) checks them only where it can see the literal.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WebContents } from 'electron';

/**
 * The renderer's policy. renderer/index.html carries exactly these directives as a meta tag, which
 * is what applies to the app page (file:// responses have no headers); the test keeps the two equal.
 * connect-src names only loopback WebSockets (web mode); no remote host is reachable.
 */
export const RENDERER_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob: mediastream:",
  "connect-src 'self' ws://127.0.0.1:* ws://localhost:*",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/** The header for anything served over a network scheme: the same policy plus what only a header can say. */
export const ELECTRON_CSP = `${RENDERER_CSP}; frame-ancestors 'none'`;

/** True for the app's own page: a file:// URL of `appIndex` (query and hash ignored). */
export function isAppPageUrl(url: string | undefined | null, appIndex: string): boolean {
  if (!url) return false;
  try {
    const u = new URL(url);
    if (u.protocol !== 'file:') return false;
    u.search = '';
    u.hash = '';
    return resolve(fileURLToPath(u)) === resolve(appIndex);
  } catch {
    return false;
  }
}

export interface PermissionRequest {
  permission: string;
  /** The asking web contents is the DeepVis window, showing the app page. */
  fromAppWindow: boolean;
  requestingUrl?: string | null;
  /** For 'media': what is asked for ('video', 'audio'). */
  mediaTypes?: readonly string[];
}

/** Camera (video only) for the app page in the app window; nothing else, ever. */
export function allowPermissionRequest(r: PermissionRequest, appIndex: string): boolean {
  const media = r.mediaTypes ?? [];
  return (
    r.permission === 'media' &&
    r.fromAppWindow &&
    isAppPageUrl(r.requestingUrl, appIndex) &&
    media.length > 0 &&
    media.every((t) => t === 'video')
  );
}

export interface PermissionCheck {
  permission: string;
  fromAppWindow: boolean;
  requestingUrl?: string | null;
  /** 'video', 'audio' or 'unknown' (Chromium asks without a type, e.g. for device enumeration). */
  mediaType?: string;
}

/**
 * Answers "is it granted?" queries. Never grants audio; an untyped media query from the app page is
 * answered yes because capture itself still goes through allowPermissionRequest (video only).
 */
export function allowPermissionCheck(c: PermissionCheck, appIndex: string): boolean {
  if (c.permission !== 'media' || c.mediaType === 'audio') return false;
  return c.fromAppWindow && (c.requestingUrl == null || isAppPageUrl(c.requestingUrl, appIndex));
}

/** Nothing leaves the app: no navigation, no redirects, no webviews, no new windows. */
export function confineWebContents(contents: WebContents): void {
  contents.on('will-navigate', (e) => e.preventDefault());
  contents.on('will-redirect', (e) => e.preventDefault());
  contents.on('will-attach-webview', (e) => e.preventDefault());
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
}
