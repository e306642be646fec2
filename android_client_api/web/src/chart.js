// One live uPlot chart per metric, with its val_ twin: x is the epoch (fractional during an epoch).
import uPlot from "uplot";
import { h } from "./ui.js";

const MAX_POINTS = 4000; // beyond this, every other batch point goes: a long run stays light to draw

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const finite = (v) => (v === null || v === undefined || !Number.isFinite(v) ? null : v);

export class MetricChart {
  constructor(name) {
    this.name = name;
    this.x = [];
    this.train = [];
    this.val = [];
    this.epochPoint = []; // true where the point is an epoch's end (kept when thinning)
    this.dirty = false;
    this.plot = null;
    this.box = h("div", { class: "chart-plot" });
    this.el = h("div", { class: "chart card", "data-metric": name }, h("h3", {}, name), this.box);
  }

  /** A batch's running value at x = epoch + progress. */
  addBatch(x, value) {
    this._put(x, finite(value), undefined, false);
  }

  /** An epoch's end: the training value and its val_ twin at x = epoch + 1. */
  addEpoch(x, value, valValue) {
    this._put(x, finite(value), finite(valValue), true);
  }

  /** Redraw if something changed; called from the page's animation frame. */
  draw() {
    if (!this.dirty || !this.box.isConnected) return;
    this.dirty = false;
    const data = [this.x, this.train, this.val];
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const grid = { stroke: css("--line"), width: 1 };
    const axis = { stroke: css("--muted"), grid, ticks: grid };
    this.plot = new uPlot({
      width: this._width(), height: 180,
      scales: { x: { time: false } },
      axes: [{ ...axis, label: "epoch" }, { ...axis, size: 60 }],
      series: [
        { label: "epoch", value: (_u, v) => (v == null ? "–" : v.toFixed(2)) },
        { label: this.name, stroke: css("--chart-train"), width: 2, spanGaps: true, points: { show: false } },
        { label: `val_${this.name}`, stroke: css("--chart-val"), width: 2, spanGaps: true },
      ],
      legend: { live: true },
    }, data, this.box);
    new ResizeObserver(() => this.plot.setSize({ width: this._width(), height: 180 })).observe(this.box);
  }

  _width() {
    return Math.max(200, this.box.clientWidth || this.el.clientWidth - 24);
  }

  _put(x, value, valValue, isEpoch) {
    this.dirty = true;
    // Messages come in order; stored epochs drawn after live batches need a sorted insert.
    let i = this.x.length;
    while (i > 0 && this.x[i - 1] > x) i--;
    if (i > 0 && Math.abs(this.x[i - 1] - x) < 1e-9) {
      if (value !== null) this.train[i - 1] = value;
      if (valValue !== undefined) this.val[i - 1] = valValue;
      this.epochPoint[i - 1] ||= isEpoch;
      return;
    }
    this.x.splice(i, 0, x);
    this.train.splice(i, 0, value);
    this.val.splice(i, 0, valValue === undefined ? null : valValue);
    this.epochPoint.splice(i, 0, isEpoch);
    if (this.x.length > MAX_POINTS) this._thin();
  }

  _thin() {
    const keep = (_, i) => this.epochPoint[i] || i % 2 === 0 || i === this.x.length - 1;
    const idx = this.x.map((_, i) => i).filter((i) => keep(null, i));
    for (const name of ["x", "train", "val", "epochPoint"]) this[name] = idx.map((i) => this[name][i]);
  }
}
