// Admin › Definitions: export (a download) and import (a file upload), all
// vhosts or one, in RabbitMQ's definitions.json format.
import { api, enc } from '../../api.js';
import { app, loadVhosts } from '../../app.js';
import { h, section, field, flash, errText } from '../../util.js';

export async function definitions(ctx, body) {
  const scope = h('select', { name: 'vhost' }, h('option', { value: '' }, 'All virtual hosts'), app.vhosts.map((v) => h('option', { value: v }, v)));
  const file = h('input', { type: 'file', accept: '.json,application/json', id: 'import-file' });
  body.append(
    section('Export definitions', h('p', { class: 'muted' }, 'Users, virtual hosts, permissions, policies, exchanges, queues and bindings, in RabbitMQ\'s definitions.json format.'),
      h('div', { class: 'form inline' }, field('Scope', scope), h('div', { class: 'actions' }, h('button', {
        id: 'export', onclick: async () => {
          const v = scope.value;
          const defs = await api(v ? `/definitions/${enc(v)}` : '/definitions');
          const blob = new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' });
          const a = h('a', { href: URL.createObjectURL(blob), download: `warren_definitions${v ? '_' + v.replace(/\W/g, '_') : ''}_${new Date().toISOString().slice(0, 10)}.json` });
          document.body.append(a); a.click(); a.remove();
          flash('Definitions exported');
        },
      }, 'Download definitions')))),
    section('Import definitions', h('p', { class: 'muted' }, 'A definitions file exported from Warren or RabbitMQ.'),
      h('div', { class: 'form inline' }, field('File', file), h('div', { class: 'actions' }, h('button', {
        id: 'import', onclick: async () => {
          if (!file.files[0]) { flash('Choose a file first', 'error'); return; }
          try {
            const text = await file.files[0].text();
            const v = scope.value;
            await api(v ? `/definitions/${enc(v)}` : '/definitions', { method: 'POST', body: text });
            flash('Definitions imported'); loadVhosts();
          } catch (e) { flash(errText(e), 'error'); }
        },
      }, 'Upload definitions')))),
  );
}
