/**
 * A tiny DOM builder. Text only ever goes in through `textContent` (text nodes), never
 * `innerHTML`: names, chat and reactions come from other people.
 */

export type Child = Node | string | number | null | undefined | false;

export interface Attrs {
  /** Class names (space separated). */
  class?: string;
  /** `textContent` (instead of children). */
  text?: string;
  /** Event listeners: `{ click: fn }`. */
  on?: { [K in keyof HTMLElementEventMap]?: (event: HTMLElementEventMap[K]) => void };
  /** Anything else is an attribute; `false`/`undefined`/`null` leave it out, `true` sets it empty. */
  [attribute: string]: unknown;
}

/** Creates an element with attributes, listeners and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'on') {
      for (const [event, fn] of Object.entries(value as Record<string, EventListener>)) {
        el.addEventListener(event, fn);
      }
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (key === 'class') {
      el.className = String(value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else if (value !== false && value !== undefined && value !== null) {
      el.setAttribute(key, String(value));
    }
  }
  append(el, ...children);
  return el;
}

/** Appends children (strings become text nodes). */
export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Sets `textContent` only when it changed (keeps selections and avoids layout work). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

/** Shows or hides an element (the `hidden` attribute; the styles make it stick). */
export function show(el: HTMLElement, visible: boolean): void {
  if (el.hidden === visible) el.hidden = !visible;
}

/** Sets or removes an attribute only when it changed. */
export function setAttr(el: Element, name: string, value: string | undefined): void {
  if (value === undefined) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== value) {
    el.setAttribute(name, value);
  }
}

/** A stable hue for a member (avatars, chat names). */
export function hueOf(id: number): number {
  return (Math.imul(id + 1, 2654435761) >>> 0) % 360;
}

/** The first letter of a name, for avatars. */
export function initialOf(name: string): string {
  const first = [...name.trim()][0];
  return first ? first.toUpperCase() : '?';
}

/** Milliseconds, signed, for drift: `+3.2 ms`, `−41 ms`. */
export function formatSignedMs(ms: number): string {
  const abs = Math.abs(ms);
  const digits = abs < 10 ? 1 : 0;
  const text = abs.toFixed(digits);
  if (Number(text) === 0) return `${(0).toFixed(digits)} ms`;
  return `${ms < 0 ? '−' : '+'}${text} ms`;
}

/** Copies text: the async clipboard, or the old select-and-copy for insecure origins. */
export async function copyText(text: string, input?: HTMLInputElement): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the fallback
  }
  const field = input ?? h('input', { value: text, readonly: true, class: 'ls-offscreen' });
  const temporary = !input;
  if (temporary) document.body.appendChild(field);
  try {
    field.focus();
    field.select();
    field.setSelectionRange(0, text.length);
    return document.execCommand('copy');
  } catch {
    return false;
  } finally {
    if (temporary) field.remove();
  }
}
