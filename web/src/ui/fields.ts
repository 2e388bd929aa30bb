/** Form fields the demo lobby and the Jellyfin panel share when creating a room. */
import { h } from './dom';

/** Who decides in the new room. */
export function modeSelect(): HTMLSelectElement {
  return h(
    'select',
    { class: 'ls-input', 'data-test': 'create-mode' },
    h('option', { value: 'host', text: 'The host decides' }),
    h('option', { value: 'democratic', text: 'Democratic: the room votes' }),
  );
}

/** The new room's optional password (at most the protocol's 128 bytes' worth). */
export function roomPasswordInput(): HTMLInputElement {
  return h('input', {
    class: 'ls-input',
    type: 'password',
    'data-test': 'create-password',
    placeholder: 'Optional',
    autocomplete: 'new-password',
    maxlength: '128',
  });
}
