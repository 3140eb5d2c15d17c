// Pieces every page uses: loading, errors and empty states, a sparkline,
// and uPlot charts.
import { useEffect, useRef, useState, useCallback } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

// Loads `fn()` (again when `deps` change, or reload() is called).
export function useLoad(fn, deps) {
  const [state, setState] = useState({ loading: true, data: null, error: null });
  const load = useCallback(async () => {
    try {
      const data = await fn();
      setState({ loading: false, data, error: null });
    } catch (e) {
      setState((s) => ({ loading: false, data: s.data, error: e.message }));
    }
  }, deps);
  useEffect(() => { load(); }, [load]);
  return [state, load];
}

export function Status({ state, empty, children }) {
  if (state.loading && !state.data) return <p class="loading">Loading…</p>;
  if (state.error && !state.data) return <p class="error" role="alert">{state.error}</p>;
  if (empty) return <p class="empty">{empty}</p>;
  return (
    <>
      {state.error && <p class="error" role="alert">{state.error}</p>}
      {children}
    </>
  );
}

// An action button that shows the API's answer when it fails.
export function Action({ label, busyLabel, run, disabled, kind, title, name }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const click = async () => {
    setBusy(true);
    setError('');
    try {
      await run();
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="action">
      <button class={kind || ''} disabled={disabled || busy} onClick={click} title={title} name={name}>
        {busy ? busyLabel || label + '…' : label}
      </button>
      {error && <span class="error" role="alert">{error}</span>}
    </span>
  );
}

export function Sparkline({ values, errors, width = 120, height = 28 }) {
  const max = Math.max(1, ...values);
  const pts = (vs) =>
    vs.map((v, i) => `${((i / Math.max(1, vs.length - 1)) * width).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join(' ');
  return (
    <svg class="spark" width={width} height={height} viewBox={`0 0 ${width} ${height}`} aria-hidden="true">
      <polyline points={pts(values)} fill="none" stroke="var(--accent)" stroke-width="1.5" />
      {errors && errors.some((e) => e > 0) && <polyline points={pts(errors)} fill="none" stroke="var(--bad)" stroke-width="1.5" />}
    </svg>
  );
}

// A time chart: `x` in seconds since the epoch, `series` [{label, values, color}].
export function Chart({ title, x, series, unit }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current) return;
    const width = Math.max(280, box.current.clientWidth || 600);
    const plot = new uPlot(
      {
        width,
        height: 180,
        title,
        scales: { x: { time: true } },
        axes: [{}, { label: unit, size: 60 }],
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, points: { show: false } }))],
      },
      [x, ...series.map((s) => s.values)],
      box.current,
    );
    return () => plot.destroy();
  }, [title, x, series, unit]);
  return <div class="chart" ref={box} data-points={x.length} />;
}
