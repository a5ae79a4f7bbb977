/* Department dashboards: each chart card fetches its figure JSON and draws it with the
   vendored Chart.js. The CSV link of the card serves the same rows. */
(function () {
  "use strict";
  var PALETTE = ["#1f6feb", "#f0883e", "#2da44e", "#bf3989", "#8250df", "#d4a72c", "#1b7c83", "#cf222e",
    "#57606a", "#0969da", "#9a6700", "#116329"];

  // Codes inside figures (priorities, statuses) in the page's language (labels.chart_code_labels).
  var CODES = {};
  function loadCodes() {
    var node = document.getElementById("chart-code-labels");
    if (node) { try { CODES = JSON.parse(node.textContent); } catch (e) { CODES = {}; } }
  }
  function word(v) { return (typeof v === "string" && Object.prototype.hasOwnProperty.call(CODES, v)) ? CODES[v] : v; }

  function el(tag, text) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; }

  function renderTable(box, fig) {
    var table = el("table"), thead = el("thead"), tr = el("tr");
    fig.columns.forEach(function (c) { tr.appendChild(el("th", c)); });
    thead.appendChild(tr); table.appendChild(thead);
    var tbody = el("tbody");
    fig.rows.forEach(function (row) {
      var r = el("tr");
      row.forEach(function (v) { r.appendChild(el("td", v === null ? "—" : String(word(v)))); });
      tbody.appendChild(r);
    });
    table.appendChild(tbody);
    box.replaceChildren(table);
  }

  function draw(card, fig) {
    var chart = fig.chart;
    card.querySelector(".chart-title").textContent = fig.title;
    card.querySelector(".chart-note").textContent = chart.note || "";
    renderTable(card.querySelector(".table-wrap"), fig);
    var canvas = card.querySelector("canvas");
    var stacked = chart.type === "stacked";
    var datasets = chart.datasets.map(function (d, i) {
      var color = PALETTE[i % PALETTE.length];
      return { label: word(d.label), data: d.data, backgroundColor: color, borderColor: color, borderWidth: 1 };
    });
    var axisTitle = chart.unit ? { display: true, text: chart.unit } : { display: false };
    var valueAxis = { beginAtZero: true, stacked: stacked, title: axisTitle };
    var labelAxis = { stacked: stacked };
    var old = window.Chart.getChart(canvas);
    if (old) old.destroy();
    new window.Chart(canvas, {
      type: chart.type === "line" ? "line" : "bar",
      data: { labels: (chart.labels || []).map(word), datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        indexAxis: chart.horizontal ? "y" : "x",
        scales: chart.horizontal ? { x: valueAxis, y: labelAxis } : { x: labelAxis, y: valueAxis },
        plugins: { legend: { display: datasets.length > 1 } }
      }
    });
    if (!fig.rows.length) card.querySelector(".chart-note").textContent = card.dataset.emptyText || "No data in this period.";
    canvas.dataset.ready = "1";
  }

  function load(card) {
    fetch(card.dataset.jsonUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (fig) { draw(card, fig); })
      .catch(function (err) {
        card.querySelector(".chart-note").textContent = String(err);
        card.querySelector("canvas").dataset.ready = "error";
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    loadCodes();
    document.querySelectorAll("[data-figure][data-json-url]").forEach(load);
  });
})();
