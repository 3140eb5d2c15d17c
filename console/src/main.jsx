// nubo's web console: a single page over the control API (docs/api.md),
// routed by the URL's hash. Bundled with esbuild into the nubo binary.
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, ApiError } from './api.js';
import { AppPage } from './app_page.jsx';
import { AppsPage } from './apps_page.jsx';
import { AuditPage, DomainsPage, TokensPage } from './admin_pages.jsx';
import './style.css';

function useHash() {
  const [hash, setHash] = useState(location.hash || '#/');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function SignIn({ onSignedIn }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      onSignedIn(await api('POST', '/v1/session', { token: token.trim() }));
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>nubo</h1>
      <form onSubmit={submit}>
        <label for="token">Token</label>
        <input id="token" type="password" autocomplete="off" value={token} placeholder="nubo_…"
          onInput={(e) => setToken(e.currentTarget.value)} />
        <p class="hint">An admin token is in <code>DATA/admin.token</code>; others come from <code>nubo tokens create</code>.</p>
        <button type="submit" disabled={busy || !token.trim()}>{busy ? 'Signing in…' : 'Sign in'}</button>
        {error && <p class="error" role="alert">{error}</p>}
      </form>
    </main>
  );
}

function Shell({ me, onSignOut, children }) {
  return (
    <>
      <header>
        <a class="brand" href="#/">nubo</a>
        <nav>
          <a href="#/">Apps</a>
          {me.role === 'admin' && <a href="#/domains">Domains</a>}
          {me.role === 'admin' && <a href="#/tokens">Tokens</a>}
          <a href="#/audit">Audit</a>
        </nav>
        <span class="me" title={me.apps.length ? 'apps: ' + me.apps.join(', ') : 'every app'}>
          {me.name} <span class={'role role-' + me.role}>{me.role}</span>
        </span>
        <button class="link" onClick={onSignOut}>Sign out</button>
      </header>
      <main>{children}</main>
    </>
  );
}

function Root() {
  const [me, setMe] = useState(undefined); // undefined: loading; null: signed out
  const [error, setError] = useState('');
  const hash = useHash();
  const load = useCallback(async () => {
    try {
      setMe(await api('GET', '/v1/whoami'));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) setMe(null);
      else setError(e.message);
    }
  }, []);
  useEffect(() => { load(); }, [load]);
  const signOut = async () => {
    await api('DELETE', '/v1/session').catch(() => {});
    setMe(null);
  };
  if (error) return <main><p class="error" role="alert">{error}</p></main>;
  if (me === undefined) return <main><p class="loading">Loading…</p></main>;
  if (me === null) return <SignIn onSignedIn={(who) => setMe(who)} />;
  const parts = hash.slice(2).split('/').map(decodeURIComponent);
  let page;
  if (parts[0] === 'apps' && parts[1]) page = <AppPage me={me} app={parts[1]} tab={parts[2] || 'deployments'} />;
  else if (parts[0] === 'tokens') page = <TokensPage me={me} />;
  else if (parts[0] === 'domains') page = <DomainsPage me={me} />;
  else if (parts[0] === 'audit') page = <AuditPage me={me} />;
  else page = <AppsPage me={me} />;
  return <Shell me={me} onSignOut={signOut}>{page}</Shell>;
}

render(<Root />, document.getElementById('root'));
