(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("mg-data").textContent);
  var d = data.players.length;
  var els = Array.prototype.slice.call(document.querySelectorAll(".player"));
  var byIndex = {};
  els.forEach(function (el) { var k = +el.getAttribute("data-i"); (byIndex[k] = byIndex[k] || []).push(el); });
  var pinned = null, hover = null;
  var info = document.getElementById("mg-info");
  var modeNote = document.getElementById("mg-mode");

  function dir() { var r = document.querySelector('input[name="mg-dir"]:checked'); return r ? r.value : "row"; }
  function colour(v, vmax, isCell) {
    if (v === null || !isFinite(v) || vmax <= 0) return isCell ? "rgba(0,0,0,0)" : "";
    var a = Math.min(1, Math.abs(v) / vmax) * (isCell ? 0.78 : 0.85);
    return v >= 0 ? "rgba(214,48,39," + a.toFixed(3) + ")" : "rgba(38,104,179," + a.toFixed(3) + ")";
  }
  function fmt(v) { return (v === null || !isFinite(v)) ? "nan" : (v >= 0 ? "+" : "") + Number(v).toPrecision(3); }
  function vector(k) {
    if (k === null) return data.first_order.slice();
    var out = [];
    for (var j = 0; j < d; j++) out.push(dir() === "row" ? data.matrix[k][j] : data.matrix[j][k]);
    return out;
  }
  function paint() {
    var k = hover !== null ? hover : pinned;
    var vec = vector(k);
    var vmax = 0;
    for (var j = 0; j < d; j++) if (j !== k && vec[j] !== null && isFinite(vec[j])) vmax = Math.max(vmax, Math.abs(vec[j]));
    els.forEach(function (el) {
      var j = +el.getAttribute("data-i");
      var isCell = el.classList.contains("cell");
      var v = (j === k) ? null : vec[j];
      el.style.backgroundColor = colour(v, vmax, isCell);
      el.classList.toggle("sel", j === k);
      el.classList.toggle("hl", j !== k && v !== null && vmax > 0 && Math.abs(v) >= 0.1 * vmax);
    });
    modeNote.textContent = k === null ? "colour = first-order attribution φ_i" :
      (dir() === "row" ? "colour = how each player j moves the selected player i (its row, j → i)"
                       : "colour = how the selected player i moves each player k (its column, i → k)");
    renderInfo(k);
  }
  function top(k, useRow) {
    var items = [];
    for (var j = 0; j < d; j++) {
      if (j === k) continue;
      var v = useRow ? data.matrix[k][j] : data.matrix[j][k];
      if (v !== null && isFinite(v) && v !== 0) items.push([j, v]);
    }
    items.sort(function (a, b) { return Math.abs(b[1]) - Math.abs(a[1]); });
    return items.slice(0, 6);
  }
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
  function list(title, items, arrowFirst) {
    var frag = document.createDocumentFragment();
    frag.appendChild(el("div", "kv", title));
    var ol = el("ol");
    if (!items.length) ol.appendChild(el("li", "", "none"));
    items.forEach(function (it) {
      var li = el("li"), row = el("div");
      var lbl = el("span", "lbl", data.players[it[0]]);
      lbl.title = data.players[it[0]];
      row.appendChild(lbl);
      row.appendChild(el("span", "v " + (it[1] >= 0 ? "p" : "m"), fmt(it[1])));
      li.appendChild(row);
      ol.appendChild(li);
    });
    frag.appendChild(ol);
    return frag;
  }
  function renderInfo(k) {
    while (info.firstChild) info.removeChild(info.firstChild);
    if (k === null) {
      info.appendChild(el("h3", "", "No player selected"));
      info.appendChild(el("div", "kv", "Players are coloured by their first-order attribution φ_i. Hover or click one to see who moves it and whom it moves."));
      var items = data.first_order.map(function (v, j) { return [j, v]; }).filter(function (x) { return x[1] !== null; });
      items.sort(function (a, b) { return Math.abs(b[1]) - Math.abs(a[1]); });
      info.appendChild(list("largest |φ_i|", items.slice(0, 6)));
      return;
    }
    info.appendChild(el("h3", "", data.players[k]));
    var se = data.stderr ? " (± " + fmt(data.stderr[k][k]) + ")" : "";
    info.appendChild(el("div", "kv", data.kinds[k] + " · φ_i = " + fmt(data.first_order[k]) + " · own effect M[i,i] = " + fmt(data.matrix[k][k]) + se));
    info.appendChild(list("moved most by (its row, j → i)", top(k, true)));
    info.appendChild(list("moves most (its column, i → k)", top(k, false)));
  }
  els.forEach(function (e) {
    var k = +e.getAttribute("data-i");
    e.addEventListener("mouseenter", function () { hover = k; paint(); });
    e.addEventListener("mouseleave", function () { hover = null; paint(); });
    e.addEventListener("focus", function () { hover = k; paint(); });
    e.addEventListener("blur", function () { hover = null; paint(); });
    e.addEventListener("click", function () { pinned = (pinned === k) ? null : k; hover = null; paint(); });
  });
  Array.prototype.forEach.call(document.querySelectorAll('input[name="mg-dir"]'), function (r) { r.addEventListener("change", paint); });
  document.getElementById("mg-clear").addEventListener("click", function () { pinned = null; hover = null; paint(); });

  // sortable table
  var table = document.getElementById("mg-table");
  if (table) {
    var ths = table.querySelectorAll("thead th");
    Array.prototype.forEach.call(ths, function (th, col) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(ths, function (t) { t.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var num = th.getAttribute("data-type") === "num";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col], c;
          if (num) {
            var xv = parseFloat(x.getAttribute("data-v")), yv = parseFloat(y.getAttribute("data-v"));
            if (isNaN(xv)) xv = -Infinity; if (isNaN(yv)) yv = -Infinity;
            c = xv - yv;
          } else { c = x.textContent.localeCompare(y.textContent); }
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  paint();
})();
