import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, keyMap, loadSettings, mergeSettings, SETTINGS_STORAGE_KEY, ACTION_HELP } from './settings';

describe('settings', () => {
  it('has the DVT key bindings', () => {
    const m = keyMap(DEFAULT_SETTINGS.keys);
    expect(m.get('u')).toBe('prevLayer');
    expect(m.get('o')).toBe('nextLayer');
    expect(m.get('f')).toBe('freeze');
    expect(m.get('c')).toBe('toggleSource');
    expect(m.get('e')).toBe('nextImage');
    expect(m.get('PageUp')).toBe('prevImage');
    expect(m.get('t')).toBe('gammaBoost');
    expect(m.get('T')).toBe('channelBoost');
    expect(m.get('J')).toBe('cursorLeft3');
    expect(m.get('i')).toBe('cursorUp');
    expect(m.get('k')).toBe('cursorDown');
    expect(m.get('8')).toBe('toggleLabels');
    expect(m.get('h')).toBe('help');
    expect(m.get('Escape')).toBe('reset');
    expect(m.get('q')).toBe('quit');
    expect(Object.keys(ACTION_HELP).sort()).toEqual(Object.keys(DEFAULT_SETTINGS.keys).sort());
  });
  it('overrides from localStorage, ignoring unknown keys and wrong types', () => {
    const s = loadSettings({
      getItem: (k: string) =>
        k === SETTINGS_STORAGE_KEY ? JSON.stringify({ model: 'darknet-tiny', keys: { freeze: ['f', ' '] }, grid: { gap: 'wide', cursorColor: '#f00' }, bogus: 1 }) : null,
    });
    expect(s.model).toBe('darknet-tiny');
    expect(s.keys.freeze).toEqual(['f', ' ']);
    expect(s.keys.help).toEqual(DEFAULT_SETTINGS.keys.help);
    expect(s.grid.gap).toBe(DEFAULT_SETTINGS.grid.gap);
    expect(s.grid.cursorColor).toBe('#f00');
    expect('bogus' in s).toBe(false);
    expect(DEFAULT_SETTINGS.model).toBe(null); // defaults untouched
  });
  it('survives bad JSON', () => {
    const warn = console.warn;
    console.warn = () => {};
    expect(loadSettings({ getItem: () => '{nope' })).toEqual(DEFAULT_SETTINGS);
    console.warn = warn;
  });
  it('merges arrays only with same-typed items', () => {
    expect(mergeSettings({ a: [1, 2] }, { a: ['x'] }).a).toEqual([1, 2]);
    expect(mergeSettings({ a: [1, 2] }, { a: [0.5] }).a).toEqual([0.5]);
  });
});
