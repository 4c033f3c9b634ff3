// Calls per hour, answered stacked on not answered, in the chosen zone. Hours without
// calls are drawn as empty bars: a quiet hour is information, not a gap to close up.

const HOUR = 3600 * 1000;
// At least this many hours up to now are shown, so a quiet morning still has an axis.
const MIN_HOURS = 12;
// Past this many hours the empty ones are no longer filled in (weeks of bars say little).
const MAX_FILLED = 24 * 62;

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function hourLabeller(zone, multiDay) {
  const format = new Intl.DateTimeFormat("en-GB", {
    timeZone: zone,
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
    ...(multiDay ? { month: "short", day: "numeric" } : {}),
  });
  return (instant) => format.format(instant);
}

// The start of the current hour on the zone's clock (not UTC's: Asia/Kolkata's hours
// begin at half past a UTC hour).
function hourStart(zone, now = Date.now()) {
  const clock = { timeZone: zone, minute: "numeric", second: "numeric" };
  const parts = new Intl.DateTimeFormat("en-US", clock).formatToParts(new Date(now));
  const get = (type) => Number(parts.find((part) => part.type === type)?.value ?? 0);
  return Math.floor(now / 1000) * 1000 - (get("minute") * 60 + get("second")) * 1000;
}

function buckets(rows, zone, live) {
  const byHour = new Map(rows.map((row) => [Date.parse(row.group), row]));
  const hours = [...byHour.keys()].sort((a, b) => a - b);
  if (live) {
    const current = hourStart(zone);
    hours.push(current, current - (MIN_HOURS - 1) * HOUR);
    hours.sort((a, b) => a - b);
  }
  if (!hours.length) return [];
  const first = hours[0];
  const last = hours[hours.length - 1];
  if ((last - first) / HOUR > MAX_FILLED) {
    return [...byHour.keys()].sort((a, b) => a - b).map((at) => [at, byHour.get(at)]);
  }
  const filled = [];
  for (let at = first; at <= last; at += HOUR) filled.push([at, byHour.get(at)]);
  return filled;
}

function dataset(label, color) {
  return {
    label,
    data: [],
    backgroundColor: cssColor(color),
    stack: "calls",
    borderRadius: 2,
    maxBarThickness: 28,
  };
}

function options() {
  const callsIn = (items) => items.reduce((total, item) => total + item.parsed.y, 0);
  return {
    animation: false,
    maintainAspectRatio: false,
    interaction: { mode: "index", intersect: false },
    scales: {
      x: {
        stacked: true,
        grid: { display: false },
        ticks: { maxRotation: 0, autoSkipPadding: 12 },
      },
      y: {
        stacked: true,
        beginAtZero: true,
        grid: { color: cssColor("--grid") },
        border: { display: false },
        ticks: { precision: 0 },
      },
    },
    plugins: {
      legend: { position: "top", align: "end", labels: { boxWidth: 10, boxHeight: 10 } },
      tooltip: { callbacks: { footer: (items) => `Calls: ${callsIn(items)}` } },
    },
  };
}

export class HourChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.chart = null;
  }

  create() {
    const { Chart } = window;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 11;
    Chart.defaults.color = cssColor("--muted");
    const datasets = [
      dataset("Answered", "--chart-answered"),
      dataset("Not answered", "--chart-missed"),
    ];
    const data = { labels: [], datasets };
    this.chart = new Chart(this.canvas, { type: "bar", data, options: options() });
  }

  render(rows, zone, live) {
    // Without the chart library the rest of the page still works.
    if (!window.Chart) return;
    if (!this.chart) this.create();
    const hours = buckets(rows, zone, live);
    const multiDay = hours.length > 0 && hours[hours.length - 1][0] - hours[0][0] >= 24 * HOUR;
    const label = hourLabeller(zone, multiDay);
    this.chart.data.labels = hours.map(([at]) => label(new Date(at)));
    this.chart.data.datasets[0].data = hours.map(([, row]) => row?.answered ?? 0);
    this.chart.data.datasets[1].data = hours.map(([, row]) => (row ? row.calls - row.answered : 0));
    this.chart.update("none");
  }
}
