// The app page's usage charts: reads the series the page carries in
// <script type="application/json" id="usage-data"> and draws four small plotly.js charts
// (plotly.min.js is served from the platform's origin too). Without JavaScript the table
// below them shows the same figures. Colours follow tessera.css, light or dark.
(function () {
  'use strict';
  var data = document.getElementById('usage-data');
  var box = document.getElementById('usage-charts');
  if (!data || !box || typeof window.Plotly === 'undefined') return;
  var usage = JSON.parse(data.textContent);
  var points = usage.points;

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }
  // Plotly reads a date string without a zone as it is: the axis shows UTC, as the table.
  function utc(ms) {
    return new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
  }
  var x = points.map(function (p) { return utc(p.at); });
  var step = usage.step_minutes === 1 ? 'minute' : usage.step_minutes + ' minutes';

  function layout(title, yTitle, extra) {
    var fg = css('--fg');
    var grid = css('--line');
    var base = {
      title: { text: title, font: { size: 14, color: fg }, x: 0.02 },
      paper_bgcolor: css('--panel'),
      plot_bgcolor: css('--panel'),
      font: { color: fg, family: 'system-ui, sans-serif', size: 11 },
      margin: { l: 48, r: 12, t: 40, b: 32 },
      height: 240,
      showlegend: true,
      legend: { orientation: 'h', x: 1, xanchor: 'right', y: 1.02, yanchor: 'bottom' },
      xaxis: { gridcolor: grid, linecolor: grid, zeroline: false, tickformat: '%H:%M', title: { text: '' } },
      yaxis: { gridcolor: grid, linecolor: grid, zeroline: false, rangemode: 'tozero', title: { text: yTitle } },
    };
    for (var key in extra) base[key] = extra[key];
    return base;
  }

  var config = { displayModeBar: false, responsive: true };
  var accent = css('--accent');
  var danger = css('--danger');
  var ok = css('--ok');
  var muted = css('--muted');

  var charts = [
    {
      id: 'usage-chart-callbacks',
      label: 'Callbacks per ' + step + ', errors stacked on the successful ones',
      traces: [
        { type: 'bar', name: 'ok', x: x, y: points.map(function (p) { return p.callbacks - p.errors; }), marker: { color: accent } },
        { type: 'bar', name: 'errors', x: x, y: points.map(function (p) { return p.errors; }), marker: { color: danger } },
      ],
      layout: layout('Callbacks per ' + step, 'callbacks', { barmode: 'stack' }),
    },
    {
      id: 'usage-chart-latency',
      label: 'Callback latency, p50 and p99, in milliseconds',
      traces: [
        { type: 'scatter', mode: 'lines+markers', name: 'p50', x: x, y: points.map(function (p) { return p.p50_ms; }), line: { color: accent }, connectgaps: false },
        { type: 'scatter', mode: 'lines+markers', name: 'p99', x: x, y: points.map(function (p) { return p.p99_ms; }), line: { color: danger, dash: 'dot' }, connectgaps: false },
      ],
      layout: layout('Latency (ms)', 'ms'),
    },
    {
      id: 'usage-chart-cache',
      label: 'Shared-cache hit ratio, in percent',
      traces: [
        { type: 'scatter', mode: 'lines+markers', name: 'hit ratio', x: x, y: points.map(function (p) { return p.cache_hit_ratio === null ? null : p.cache_hit_ratio * 100; }), line: { color: ok }, connectgaps: false },
      ],
      layout: layout('Cache hit ratio (%)', '%', { yaxis: { gridcolor: css('--line'), linecolor: css('--line'), zeroline: false, range: [0, 100], title: { text: '%' } } }),
    },
    {
      id: 'usage-chart-limits',
      label: 'Sandbox limit hits (deadline, memory, output size) per ' + step,
      traces: [
        { type: 'bar', name: 'limit hits', x: x, y: points.map(function (p) { return p.limit_hits; }), marker: { color: muted } },
      ],
      layout: layout('Sandbox limit hits', 'hits'),
    },
  ];

  box.hidden = false;
  charts.forEach(function (chart) {
    var el = document.getElementById(chart.id);
    el.setAttribute('role', 'img');
    el.setAttribute('aria-label', chart.label + ' (the table below has the figures)');
    window.Plotly.newPlot(el, chart.traces, chart.layout, config);
  });
})();
