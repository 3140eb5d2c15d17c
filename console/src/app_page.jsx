// One app: its deployments (promote, rollback, redeploy, build logs), its
// traffic (charts, the split), logs, instances, env and secrets, limits.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, appHref, bytes, enc, when } from './api.js';
import { Action, Chart, Status, useLoad } from './ui.jsx';

const TABS = [
  ['deployments', 'Deployments'],
  ['traffic', 'Traffic'],
  ['logs', 'Logs'],
  ['instances', 'Instances'],
  ['env', 'Env & secrets'],
  ['settings', 'Limits & permissions'],
];

export function AppPage({ me, app, tab }) {
  const canDeploy = me.role !== 'viewer';
  return (
    <section>
      <h2><a href="#/">Apps</a> / {app}</h2>
      <nav class="tabs">
        {TABS.map(([id, label]) => (
          <a key={id} href={appHref(app, id)} class={tab === id ? 'active' : ''}>{label}</a>
        ))}
      </nav>
      {tab === 'deployments' && <Deployments app={app} canDeploy={canDeploy} />}
      {tab === 'traffic' && <Traffic app={app} canDeploy={canDeploy} />}
      {tab === 'logs' && <Logs app={app} />}
      {tab === 'instances' && <Instances app={app} />}
      {tab === 'env' && <Env app={app} canDeploy={canDeploy} />}
      {tab === 'settings' && <Settings app={app} />}
    </section>
  );
}

function Deployments({ app, canDeploy }) {
  const [state, reload] = useLoad(() => api('GET', `/v1/apps/${enc(app)}/deployments?limit=50`), [app]);
  const [log, setLog] = useState(null);
  const list = state.data ? state.data.deployments : [];
  const promote = (id) => api('POST', `/v1/apps/${enc(app)}/promote`, { deployment: id }).then(reload);
  const redeploy = async (id) => {
    const d = await api('POST', `/v1/deployments/${enc(id)}/redeploy`, {});
    setLog(d.id);
    reload();
  };
  return (
    <div>
      {canDeploy && (
        <p class="toolbar">
          <Action label="Roll back production" name="rollback"
            run={() => api('POST', `/v1/apps/${enc(app)}/rollback`, { alias: 'production' }).then(reload)} />
        </p>
      )}
      <Status state={state} empty={state.data && list.length === 0 && 'No deployments yet.'}>
        <table class="deployments">
          <thead>
            <tr><th>Deployment</th><th>State</th><th>Created</th><th>By</th><th>Size</th><th>Aliases</th><th /></tr>
          </thead>
          <tbody>
            {list.map((d) => (
              <tr key={d.id} data-deployment={d.id}>
                <td><a href={d.url} target="_blank" rel="noopener"><code>{d.id}</code></a></td>
                <td><span class={'state state-' + d.state.toLowerCase()}>{d.state}</span></td>
                <td>{when(d.created_ms)}</td>
                <td>{d.creator || '—'}</td>
                <td>{d.files} files, {bytes(d.bytes)}</td>
                <td>{(d.aliases || []).join(', ') || '—'}</td>
                <td class="buttons">
                  <button class="link" name="build-log" onClick={() => setLog(d.id)}>Build log</button>
                  {canDeploy && d.state === 'READY' && !(d.aliases || []).includes('production') && (
                    <Action label="Promote" name="promote" run={() => promote(d.id)} />
                  )}
                  {canDeploy && <Action label="Redeploy" name="redeploy" run={() => redeploy(d.id)} />}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Status>
      {log && <BuildLog id={log} onDone={reload} onClose={() => setLog(null)} />}
    </div>
  );
}

// A deployment's build and start, live: the server's event stream.
function BuildLog({ id, onDone, onClose }) {
  const [lines, setLines] = useState([]);
  const [state, setState] = useState('');
  const [error, setError] = useState('');
  useEffect(() => {
    setLines([]);
    setState('');
    const es = new EventSource(`/v1/deployments/${enc(id)}/events`);
    es.addEventListener('log', (e) => {
      const l = JSON.parse(e.data);
      setLines((ls) => [...ls.slice(-4999), l]);
    });
    es.addEventListener('state', (e) => {
      const s = JSON.parse(e.data);
      setState(s.state);
      if (s.error) setError(s.error);
      if (s.state === 'READY' || s.state === 'FAILED') {
        es.close();
        onDone && onDone();
      }
    });
    es.onerror = () => es.close();
    return () => es.close();
  }, [id]);
  return (
    <div class="panel build-log" data-state={state}>
      <h3>Build log of <code>{id}</code> <span class={'state state-' + state.toLowerCase()}>{state || '…'}</span>
        <button class="link close" onClick={onClose}>Close</button></h3>
      {error && <p class="error" role="alert">{error}</p>}
      <pre class="log">{lines.map((l) => `${l.stream === 'stdout' ? '' : '[' + l.stream + '] '}${l.text}\n`).join('')}</pre>
    </div>
  );
}

function Traffic({ app, canDeploy }) {
  const [stats, reload] = useLoad(() => api('GET', `/v1/apps/${enc(app)}/stats?minutes=60`), [app]);
  useEffect(() => {
    const t = setInterval(reload, 10000);
    return () => clearInterval(t);
  }, [reload]);
  const charts = useMemo(() => {
    if (!stats.data) return null;
    const p = stats.data.points;
    const x = p.map((q) => q.minute_ms / 1000);
    return {
      x,
      requests: [
        { label: 'requests/min', values: p.map((q) => q.requests), color: '#2563eb' },
        { label: '5xx/min', values: p.map((q) => q.errors), color: '#dc2626' },
      ],
      latency: [
        { label: 'p50 ms', values: p.map((q) => (q.requests ? q.p50_ms : null)), color: '#16a34a' },
        { label: 'p99 ms', values: p.map((q) => (q.requests ? q.p99_ms : null)), color: '#9333ea' },
      ],
      cold: [{ label: 'cold starts/min', values: p.map((q) => q.cold_starts), color: '#ea580c' }],
      total: p.reduce((n, q) => n + q.requests, 0),
    };
  }, [stats.data]);
  return (
    <div>
      <Split app={app} canDeploy={canDeploy} />
      <h3>Last hour</h3>
      <Status state={stats}>
        {charts && (
          <div class="charts" data-requests={charts.total}>
            <Chart title="Requests and errors" x={charts.x} series={charts.requests} unit="per minute" />
            <Chart title="Latency" x={charts.x} series={charts.latency} unit="ms" />
            <Chart title="Cold starts" x={charts.x} series={charts.cold} unit="per minute" />
          </div>
        )}
      </Status>
    </div>
  );
}

// Production's traffic split, with a canary slider.
function Split({ app, canDeploy }) {
  const [aliases, reload] = useLoad(() => api('GET', `/v1/apps/${enc(app)}/aliases`), [app]);
  const [deps] = useLoad(() => api('GET', `/v1/apps/${enc(app)}/deployments?limit=20`), [app]);
  const [canary, setCanary] = useState('');
  const [percent, setPercent] = useState(10);
  const prod = aliases.data && aliases.data.aliases.find((a) => a.name === 'production');
  const ready = deps.data ? deps.data.deployments.filter((d) => d.state === 'READY') : [];
  return (
    <div class="panel split">
      <h3>Production</h3>
      <Status state={aliases} empty={aliases.data && !prod && 'No production alias yet.'}>
        {prod && (
          <ul class="split-parts">
            {prod.split.map((s) => (
              <li key={s.deployment}><code>{s.deployment}</code> <meter min="0" max="100" value={s.weight} /> {s.weight}%</li>
            ))}
          </ul>
        )}
      </Status>
      {canDeploy && ready.length > 0 && (
        <div class="canary">
          <label>Canary
            <select value={canary} onChange={(e) => setCanary(e.currentTarget.value)} name="canary">
              <option value="">choose a deployment</option>
              {ready.map((d) => <option key={d.id} value={d.id}>{d.id}</option>)}
            </select>
          </label>
          <label>{percent}%
            <input type="range" min="1" max="100" value={percent} name="percent"
              onInput={(e) => setPercent(Number(e.currentTarget.value))} />
          </label>
          <Action label={`Send ${percent}% to it`} name="apply-split" disabled={!canary}
            run={() => api('POST', `/v1/apps/${enc(app)}/promote`, { deployment: canary, percent }).then(reload)} />
        </div>
      )}
    </div>
  );
}

function Logs({ app }) {
  const [filters, setFilters] = useState({ kind: 'all', status: '', grep: '', request: '', since: '' });
  const [applied, setApplied] = useState(filters);
  const [follow, setFollow] = useState(false);
  const [lines, setLines] = useState([]);
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(true);
  const cursor = useRef(0);
  const query = (f) => {
    const q = new URLSearchParams({ limit: '500', kind: f.kind });
    if (f.status) q.set('status', f.status);
    if (f.grep) q.set('grep', f.grep);
    if (f.request) q.set('request', f.request);
    if (f.since) q.set('since', String(Date.now() - Number(f.since) * 60000));
    return q;
  };
  useEffect(() => {
    let stop = false;
    let events = null;
    (async () => {
      setLoading(true);
      setError('');
      try {
        const page = await api('GET', `/v1/apps/${enc(app)}/logs?${query(applied)}`);
        if (stop) return;
        setLines(page.lines);
        cursor.current = page.cursor;
        setLoading(false);
        // Following: the server's event stream of the lines that match, from
        // the cursor of the page shown.
        if (follow && !stop) {
          const q = query(applied);
          q.delete('limit');
          q.set('after', String(cursor.current));
          events = new EventSource(`/v1/apps/${enc(app)}/logs/events?${q}`);
          events.addEventListener('log', (e) => {
            const l = JSON.parse(e.data);
            cursor.current = l.cursor;
            setLines((ls) => [...ls, l].slice(-5000));
          });
          events.onerror = () => {
            events.close();
            if (!stop) setError('the live stream broke off; search again to resume');
          };
        }
      } catch (e) {
        if (!stop) {
          setError(e.message);
          setLoading(false);
        }
      }
    })();
    return () => {
      stop = true;
      if (events) events.close();
    };
  }, [app, applied, follow]);
  const set = (k) => (e) => setFilters({ ...filters, [k]: e.currentTarget.value });
  return (
    <div>
      <form class="filters" onSubmit={(e) => { e.preventDefault(); setApplied(filters); }}>
        <select value={filters.kind} onChange={set('kind')} name="kind">
          <option value="all">everything</option>
          <option value="output">function output</option>
          <option value="requests">requests</option>
        </select>
        <input placeholder="status (5xx, 404)" value={filters.status} onInput={set('status')} name="status" size="10" />
        <input placeholder="text" value={filters.grep} onInput={set('grep')} name="grep" />
        <input placeholder="request id" value={filters.request} onInput={set('request')} name="request" size="16" />
        <select value={filters.since} onChange={set('since')} name="since">
          <option value="">any time</option>
          <option value="15">last 15 min</option>
          <option value="60">last hour</option>
          <option value="1440">last day</option>
        </select>
        <button type="submit">Search</button>
        <label class="follow"><input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} name="follow" /> live</label>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      {loading ? <p class="loading">Loading…</p> : lines.length === 0 ? <p class="empty">No lines match.</p> : (
        <table class="logs">
          <tbody>
            {lines.map((l, i) => (
              <tr key={i} class={'stream-' + l.stream}>
                <td class="ts">{when(l.ts_ms)}</td>
                <td><code>{l.deployment}</code></td>
                <td><code>{l.request_id || '-'}</code></td>
                <td>{l.stream}</td>
                <td class="text">{l.text}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function Instances({ app }) {
  const [state, reload] = useLoad(() => api('GET', '/v1/instances'), []);
  useEffect(() => {
    const t = setInterval(reload, 5000);
    return () => clearInterval(t);
  }, [reload]);
  const list = state.data ? state.data.instances.filter((i) => i.app === app) : [];
  return (
    <Status state={state} empty={state.data && list.length === 0 && 'No instance runs now (scaled to zero, or static files).'}>
      <table class="instances">
        <thead><tr><th>Deployment</th><th>PID</th><th>State</th><th>In flight</th><th>Age</th><th>Idle</th><th>Memory</th></tr></thead>
        <tbody>
          {list.map((i) => (
            <tr key={i.pid}>
              <td><code>{i.deployment}</code></td><td>{i.pid}</td><td>{i.state}</td><td class="num">{i.inflight}</td>
              <td>{Math.round(i.age_s)} s</td><td>{Math.round(i.idle_s)} s</td><td>{bytes(i.rss_bytes)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Status>
  );
}

function Env({ app, canDeploy }) {
  const [state, reload] = useLoad(() => api('GET', `/v1/apps/${enc(app)}/env`), [app]);
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [secret, setSecret] = useState(false);
  const vars = state.data ? state.data.env : [];
  const save = async () => {
    await api('PUT', `/v1/apps/${enc(app)}/env`, { vars: { [name]: value }, secret });
    setName('');
    setValue('');
    reload();
  };
  return (
    <div>
      <Status state={state} empty={state.data && vars.length === 0 && 'No env vars or secrets set (the manifest’s env still applies).'}>
        <table class="env">
          <thead><tr><th>Name</th><th>Alias</th><th>Value</th><th>Updated</th><th>By</th><th /></tr></thead>
          <tbody>
            {vars.map((v) => (
              <tr key={v.name + (v.alias || '')}>
                <td><code>{v.name}</code></td><td>{v.alias || 'all'}</td>
                <td>{v.secret ? <span class="secret">secret (write-only)</span> : <code>{v.value}</code>}</td>
                <td>{when(v.updated_ms)}</td><td>{v.updated_by}</td>
                <td>{canDeploy && <Action label="Remove" kind="link"
                  run={() => api('DELETE', `/v1/apps/${enc(app)}/env/${enc(v.name)}${v.alias ? '?alias=' + enc(v.alias) : ''}`).then(reload)} />}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Status>
      {canDeploy && (
        <div class="panel">
          <h3>Set a value</h3>
          <p class="hint">New deployments get it; running ones keep the env they were made with (redeploy to apply).</p>
          <input placeholder="NAME" value={name} onInput={(e) => setName(e.currentTarget.value)} name="env-name" />
          <input placeholder="value" type={secret ? 'password' : 'text'} value={value} autocomplete="off"
            onInput={(e) => setValue(e.currentTarget.value)} name="env-value" />
          <label><input type="checkbox" checked={secret} onChange={(e) => setSecret(e.currentTarget.checked)} /> secret</label>
          <Action label="Set" disabled={!name} run={save} />
        </div>
      )}
    </div>
  );
}

function Settings({ app }) {
  const [state] = useLoad(async () => {
    const a = await api('GET', `/v1/apps/${enc(app)}`);
    const prod = a.aliases && a.aliases.production;
    return prod ? api('GET', `/v1/deployments/${enc(prod)}`) : null;
  }, [app]);
  const m = state.data && state.data.manifest;
  return (
    <Status state={state} empty={state.data === null && !state.loading && 'No production deployment yet.'}>
      {m && (
        <div class="panel">
          <h3>Production <code>{state.data.id}</code>: {m.runtime}</h3>
          <dl class="limits">
            {Object.entries(m.limits || {}).map(([k, v]) => <><dt>limits.{k}</dt><dd>{String(v)}</dd></>)}
            {Object.entries(m.permissions || {}).map(([k, v]) => <><dt>permissions.{k}</dt><dd>{String(v)}</dd></>)}
          </dl>
        </div>
      )}
    </Status>
  );
}
