// Class lookup that works across class orders: the model's own index, a WordNet id, or an exact
// class name (the full ImageNet string or any one of its comma-separated synonyms, any case).
// One definition, shared with the window's search box (contract/units.ts).
export { resolveClass } from '../../contract/units.js';
