/**
 * A layer over the video (floating reactions, the "click to join playback" prompt). It lives
 * in `document.body` (or the fullscreen element) with `position: fixed` and follows the
 * video's box, so the host page's DOM around its player is never touched.
 */
import { h } from './dom';
import { injectStyles } from './styles';

export class VideoLayer {
  readonly el: HTMLDivElement;
  private resizeObserver?: ResizeObserver;
  private readonly onViewportChange = () => this.place();

  /** `target` is the video; without one the layer covers `fallback` (the panel). */
  constructor(
    private target: HTMLElement | undefined,
    private fallback: HTMLElement,
  ) {
    injectStyles();
    this.el = h('div', { class: 'ls-theme ls-layer', 'data-test': 'video-layer' });
    this.attach();
    if (typeof ResizeObserver === 'function') {
      this.resizeObserver = new ResizeObserver(this.onViewportChange);
      this.resizeObserver.observe(target ?? fallback);
    }
    window.addEventListener('resize', this.onViewportChange);
    window.addEventListener('scroll', this.onViewportChange, true);
    document.addEventListener('fullscreenchange', this.onFullscreen);
    this.place();
  }

  /** The element the layer covers now. */
  private get covered(): HTMLElement {
    return this.target && this.target.isConnected ? this.target : this.fallback;
  }

  private readonly onFullscreen = () => {
    this.attach();
    this.place();
  };

  /** In fullscreen only the fullscreen element's subtree shows: move the layer there. */
  private attach(): void {
    const fs = document.fullscreenElement;
    const parent = fs && fs !== this.covered && fs.contains(this.covered) ? fs : document.body;
    if (this.el.parentElement !== parent) parent.appendChild(this.el);
  }

  /** Follows the covered element's box (call it now and then: layouts move without resizing). */
  place(): void {
    const rect = this.covered.getBoundingClientRect();
    const style = this.el.style;
    if (rect.width === 0 || rect.height === 0) {
      style.display = 'none';
      return;
    }
    style.display = '';
    const px = (v: number) => `${Math.round(v)}px`;
    if (style.left !== px(rect.left)) style.left = px(rect.left);
    if (style.top !== px(rect.top)) style.top = px(rect.top);
    if (style.width !== px(rect.width)) style.width = px(rect.width);
    if (style.height !== px(rect.height)) style.height = px(rect.height);
  }

  /** Floats a reaction up from the bottom of the video. */
  float(reaction: string, from?: string): void {
    if (this.el.childElementCount > 40) return;
    const item = h(
      'div',
      { class: 'ls-float', 'data-test': 'reaction-float', 'aria-hidden': 'true' },
      h('span', { text: reaction }),
      from ? h('small', { text: from }) : null,
    );
    item.style.left = `${8 + Math.random() * 76}%`;
    const done = () => item.remove();
    item.addEventListener('animationend', done);
    setTimeout(done, 3500);
    this.el.appendChild(item);
    this.place();
  }

  destroy(): void {
    this.resizeObserver?.disconnect();
    window.removeEventListener('resize', this.onViewportChange);
    window.removeEventListener('scroll', this.onViewportChange, true);
    document.removeEventListener('fullscreenchange', this.onFullscreen);
    this.el.remove();
  }
}
