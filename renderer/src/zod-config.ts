// Imported first by main.ts. The page's Content-Security-Policy forbids eval; zod 4 would otherwise
// probe `new Function` (a CSP violation on every start) to compile its validators.
import { z } from 'zod';

z.config({ jitless: true });
