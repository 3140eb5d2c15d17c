// The apps: each with its production deployment, last deploy, and its
// requests and errors over the last hour.
import { api, appHref, ago } from './api.js';
import { Sparkline, Status, useLoad } from './ui.jsx';

export function AppsPage() {
  const [state] = useLoad(async () => {
    const [apps, stats] = await Promise.all([api('GET', '/v1/apps'), api('GET', '/v1/stats?minutes=60')]);
    const byApp = new Map(stats.apps.map((s) => [s.app, s]));
    return apps.apps.map((a) => ({ ...a, stats: byApp.get(a.name) }));
  }, []);
  const apps = state.data || [];
  return (
    <section>
      <h2>Apps</h2>
      <Status state={state} empty={state.data && apps.length === 0 && 'No apps yet: deploy a folder with `nubo deploy`.'}>
        <table class="apps">
          <thead>
            <tr><th>App</th><th>Production</th><th>Last deploy</th><th>Requests (1 h)</th><th>Errors</th><th class="wide">Last hour</th></tr>
          </thead>
          <tbody>
            {apps.map((a) => (
              <tr key={a.name} data-app={a.name}>
                <td><a href={appHref(a.name)}>{a.name}</a></td>
                <td><code>{a.production || '—'}</code></td>
                <td title={a.last_deploy_ms ? new Date(a.last_deploy_ms).toISOString() : ''}>{ago(a.last_deploy_ms)}</td>
                <td class="num">{a.stats ? a.stats.requests : 0}</td>
                <td class={'num' + (a.stats && a.stats.errors ? ' bad' : '')}>{a.stats ? a.stats.errors : 0}</td>
                <td class="wide">{a.stats && <Sparkline values={a.stats.requests_per_minute} errors={a.stats.errors_per_minute} />}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Status>
    </section>
  );
}
