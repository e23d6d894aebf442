// One exchange: figures, rates, bindings (this exchange as source and as
// destination), add binding, publish, delete.
import { api, enc } from '../api.js';
import { h, clear, section, kv, goneNotice, showGone, fmtRate, rate, features, flash, link, hasStats } from '../util.js';
import { TimeChart } from '../chart.js';
import { publishForm, bindingsTable, bindForm } from './common.js';

export async function render(ctx, main, vhost, name) {
  const base = `/exchanges/${enc(vhost)}/${enc(name)}`;
  const details = h('div', { id: 'exchange-details' });
  const out = h('div', { id: 'exchange-bindings' });
  const into = h('div');
  const rates = new TimeChart({ id: 'chart-exchange-rates', rate: true, series: [{ label: 'Publish in' }, { label: 'Publish out' }] });
  const isDefault = name === 'amq.default' || name === '';
  const gone = goneNotice('exchange-gone');
  const load = async () => {
    clear(out, bindingsTable(await api(`${base}/bindings/source`), { vhost, from: 'exchange', onChange: load }));
    clear(into, bindingsTable(await api(`${base}/bindings/destination`), { vhost, from: 'queue', onChange: load }));
  };
  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/exchanges' }, 'Exchanges'), ' › ', vhost, ' › '),
    h('h1', {}, 'Exchange ', h('span', { class: 'obj-name', id: 'exchange-name' }, isDefault ? '(AMQP default)' : name), ' ', h('a', { class: 'small-link', href: link.topology(vhost) }, 'topology ›')),
    gone,
    h('div', { class: 'cols' }, section('Overview', details), section('Message rates', rates.el)),
    isDefault ? section('Bindings', h('p', { class: 'muted' }, 'The default exchange is implicitly bound to every queue, with the queue\'s name as routing key.'))
      : section('Bindings', h('h3', {}, 'This exchange → destinations'), out, bindForm(vhost, name, 'exchange', load), h('h3', {}, 'Exchanges → this exchange'), into),
    section('Publish message', publishForm(vhost, isDefault ? '' : name)),
    isDefault || name.startsWith('amq.') ? null : section('Danger zone', h('button', { class: 'danger', onclick: async () => {
      if (!confirm(`Delete exchange ${name}?`)) return;
      await api(base, { method: 'DELETE' }); flash('Exchange deleted'); location.hash = '#/exchanges';
    } }, 'Delete exchange')),
  );
  if (!isDefault) load().catch(() => {});
  ctx.every(2000, async () => {
    let e;
    try { e = await api(base); } catch (err) {
      if (err.status === 404) { showGone(gone, `Exchange ${name} does not exist in virtual host ${vhost}.`); return; }
      throw err;
    }
    gone.hidden = true;
    if (hasStats(e)) rates.push([rate(e, 'publish_in'), rate(e, 'publish_out')]);
    else { rates.push([]); rates.setNote('This broker does not report message rates yet'); }
    clear(details, kv([
      ['Virtual host', vhost], ['Type', e.type], ['Features', h('span', {}, features(e))],
      ['Publish in', fmtRate(rate(e, 'publish_in'))], ['Publish out', fmtRate(rate(e, 'publish_out'))],
      ['Arguments', h('code', {}, JSON.stringify(e.arguments || {}))], e.policy && ['Policy', e.policy],
    ]));
  });
}
