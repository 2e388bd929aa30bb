/** Short messages that hide themselves: notices, refused commands, decisions. */
import { h } from './dom';
import { injectStyles } from './styles';

export type ToastLevel = 'info' | 'success' | 'error';

/** Most toasts on screen at once; older ones go first. */
const MAX_TOASTS = 4;

export class Toasts {
  readonly el: HTMLDivElement;
  private timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(parent: HTMLElement = document.body) {
    injectStyles();
    this.el = h('div', {
      class: 'ls-theme ls-toasts',
      role: 'status',
      'aria-live': 'polite',
      'data-test': 'toasts',
    });
    parent.appendChild(this.el);
  }

  /** Shows a message for `ms` (errors a little longer). */
  show(text: string, level: ToastLevel = 'info', ms = level === 'error' ? 7000 : 5000): HTMLElement {
    const close = h('button', {
      class: 'ls-btn ls-btn-ghost ls-btn-sm',
      type: 'button',
      'aria-label': 'Dismiss',
      text: '✕',
    });
    const toast = h('div', { class: 'ls-toast', 'data-test': 'toast', 'data-level': level }, h('span', { text }), close);
    const remove = () => {
      if (toast.hasAttribute('data-leaving')) return;
      toast.setAttribute('data-leaving', '');
      const t = setTimeout(() => {
        this.timers.delete(t);
        toast.remove();
      }, 260);
      this.timers.add(t);
    };
    close.addEventListener('click', remove);
    this.el.appendChild(toast);
    while (this.el.childElementCount > MAX_TOASTS) this.el.firstElementChild?.remove();
    const t = setTimeout(() => {
      this.timers.delete(t);
      remove();
    }, ms);
    this.timers.add(t);
    return toast;
  }

  destroy(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.el.remove();
  }
}
