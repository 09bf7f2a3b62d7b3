import { describe, expect, it } from 'vitest';
import { centreCrop, describeCameraError } from './camera';

describe('camera helpers', () => {
  it('centre-crops to the model aspect', () => {
    expect(centreCrop(320, 240, 224, 224)).toEqual({ sx: 40, sy: 0, sw: 240, sh: 240 });
    expect(centreCrop(240, 320, 224, 224)).toEqual({ sx: 0, sy: 40, sw: 240, sh: 240 });
    expect(centreCrop(640, 480, 300, 150)).toEqual({ sx: 0, sy: 80, sw: 640, sh: 320 });
  });
  it('explains camera failures', () => {
    expect(describeCameraError({ name: 'NotAllowedError' }).status).toBe('denied');
    expect(describeCameraError({ name: 'NotFoundError' }).status).toBe('absent');
    expect(describeCameraError({ name: 'NotReadableError', message: 'busy' }).status).toBe('busy');
    expect(describeCameraError(new Error('weird')).message).toContain('weird');
  });
});
