// Team pages: tokens (admin), domains (admin edits), the audit log.
import { useState } from 'preact/hooks';
import { api, appHref, enc, when } from './api.js';
import { Action, Status, useLoad } from './ui.jsx';

export function TokensPage({ me }) {
  const [state, reload] = useLoad(() => api('GET', '/v1/tokens'), []);
  const [form, setForm] = useState({ name: '', role: 'deployer', apps: '', expires: '' });
  const [made, setMade] = useState(null);
  if (me.role !== 'admin') return <p class="error">Tokens are managed by admins.</p>;
  const list = state.data ? state.data.tokens : [];
  const create = async () => {
    const body = { name: form.name, role: form.role };
    const apps = form.apps.split(',').map((s) => s.trim()).filter(Boolean);
    if (apps.length) body.apps = apps;
    if (form.expires) body.expires_s = Number(form.expires) * 86400;
    setMade(await api('POST', '/v1/tokens', body));
    setForm({ ...form, name: '' });
    reload();
  };
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  return (
    <section>
      <h2>Tokens</h2>
      {made && (
        <div class="panel made" role="status">
          New token <b>{made.name}</b>, shown this once: <code class="token">{made.token}</code>
        </div>
      )}
      <Status state={state} empty={state.data && list.length === 0 && 'No tokens.'}>
        <table>
          <thead><tr><th>Name</th><th>Role</th><th>Apps</th><th>Created</th><th>Last used</th><th>Expires</th><th /></tr></thead>
          <tbody>
            {list.map((t) => (
              <tr key={t.name}>
                <td>{t.name}</td><td>{t.role}</td><td>{t.apps.length ? t.apps.join(', ') : 'all'}</td>
                <td>{when(t.created_ms)}</td><td>{when(t.last_used_ms)}</td><td>{t.expires_ms ? when(t.expires_ms) : 'never'}</td>
                <td><Action label="Revoke" kind="link" run={() => api('DELETE', `/v1/tokens/${enc(t.name)}`).then(reload)} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      </Status>
      <div class="panel">
        <h3>New token</h3>
        <input placeholder="name" value={form.name} onInput={set('name')} />
        <select value={form.role} onChange={set('role')}>
          <option>viewer</option><option>deployer</option><option>admin</option>
        </select>
        <input placeholder="apps (comma-separated; empty: all)" value={form.apps} onInput={set('apps')} />
        <input placeholder="expires in days (empty: never)" value={form.expires} onInput={set('expires')} size="8" />
        <Action label="Create" disabled={!form.name} run={create} />
      </div>
    </section>
  );
}

export function DomainsPage({ me }) {
  const [state, reload] = useLoad(() => api('GET', '/v1/domains'), []);
  const [form, setForm] = useState({ host: '', app: '', alias: '' });
  const list = state.data ? state.data.domains : [];
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const add = async () => {
    const body = { host: form.host, app: form.app };
    if (form.alias) body.alias = form.alias;
    await api('POST', '/v1/domains', body);
    setForm({ host: '', app: '', alias: '' });
    reload();
  };
  return (
    <section>
      <h2>Domains</h2>
      <Status state={state} empty={state.data && list.length === 0 && 'No custom domains: apps answer at <app>.<base domain>.'}>
        <table>
          <thead><tr><th>Host</th><th>App</th><th>Alias</th><th>Added</th><th /></tr></thead>
          <tbody>
            {list.map((d) => (
              <tr key={d.host}>
                <td><a href={d.url} target="_blank" rel="noopener">{d.host}</a></td>
                <td><a href={appHref(d.app)}>{d.app}</a></td><td>{d.alias}</td><td>{when(d.created_ms)}</td>
                <td>{me.role === 'admin' && <Action label="Remove" kind="link" run={() => api('DELETE', `/v1/domains/${enc(d.host)}`).then(reload)} />}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Status>
      {me.role === 'admin' && (
        <div class="panel">
          <h3>Bind a host</h3>
          <input placeholder="shop.example.com or *.example.com" value={form.host} onInput={set('host')} />
          <input placeholder="app" value={form.app} onInput={set('app')} />
          <input placeholder="alias (production)" value={form.alias} onInput={set('alias')} />
          <Action label="Add" disabled={!form.host || !form.app} run={add} />
        </div>
      )}
    </section>
  );
}

export function AuditPage() {
  const [app, setApp] = useState('');
  const [state] = useLoad(() => api('GET', '/v1/audit?limit=200' + (app ? '&app=' + enc(app) : '')), [app]);
  const list = state.data ? state.data.entries : [];
  return (
    <section>
      <h2>Audit log</h2>
      <p class="filters"><input placeholder="only this app" value={app} onChange={(e) => setApp(e.currentTarget.value.trim())} /></p>
      <Status state={state} empty={state.data && list.length === 0 && 'Nothing recorded yet.'}>
        <table class="audit">
          <thead><tr><th>When</th><th>Who</th><th>What</th><th>App</th><th>Target</th><th>From</th></tr></thead>
          <tbody>
            {list.map((e) => (
              <tr key={e.seq}>
                <td>{when(e.at_ms)}</td><td>{e.actor}</td><td>{e.action}</td><td>{e.app || '—'}</td>
                <td><code>{e.target}</code></td><td>{e.source}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Status>
    </section>
  );
}
