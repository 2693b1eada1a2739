// Undo / redo over snapshots of the canvas. Pure: the canvas keeps one.
export type History<T> = { past: T[]; present: T; future: T[] };

export const HISTORY_MAX = 200;

export function initHistory<T>(present: T): History<T> {
  return { past: [], present, future: [] };
}
/* A new present; the old one becomes undoable, the redo list is dropped. */
export function push<T>(h: History<T>, next: T): History<T> {
  return { past: [...h.past, h.present].slice(-HISTORY_MAX), present: next, future: [] };
}
/* Replaces the present without an undo step (a drag in progress). */
export function replace<T>(h: History<T>, next: T): History<T> {
  return { ...h, present: next };
}
export function undo<T>(h: History<T>): History<T> {
  if (!h.past.length) return h;
  return { past: h.past.slice(0, -1), present: h.past[h.past.length - 1], future: [h.present, ...h.future] };
}
export function redo<T>(h: History<T>): History<T> {
  if (!h.future.length) return h;
  return { past: [...h.past, h.present], present: h.future[0], future: h.future.slice(1) };
}
