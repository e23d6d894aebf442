// The Admin tables' row buttons: Delete / Clear (asks first, then reloads
// the table). The accessible name says what: "Delete user bob".
import { api } from '../../api.js';
import { h, flash } from '../../util.js';

export const del = (path, what, reload, label = 'Delete') => h('button', {
  class: 'small danger', 'aria-label': `${label} ${what}`,
  onclick: async () => {
    if (!confirm(`${label} ${what}?`)) return;
    await api(path, { method: 'DELETE' });
    flash(`${label === 'Delete' ? 'Deleted' : 'Cleared'} ${what}`);
    await reload();
  },
}, label);
