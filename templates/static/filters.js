// Filter viewer and heatmap pointer for a layer page.  The page reads well without it: every
// filter already has an anchor (#f123) on the montage.  With it, #f123 (or #f12-f40 for a pair)
// opens a panel with that filter's maps for the content image, the style image and the result,
// cropped from the montages, and pointing at the correlation heatmap names the two filters of
// the cell under the pointer.  The same readings answer the figure viewer (zoom.js), which asks
// with a "figure-reading" event what lies at a pixel of a montage or of the heatmap.
(function () {
  "use strict";
  var dataElement = document.getElementById("layer-data");
  if (!dataElement) return;
  var data = JSON.parse(dataElement.textContent);
  var montages = {};
  document.querySelectorAll(".montage img[data-role]").forEach(function (img) {
    montages[img.dataset.role] = img;
  });

  function tileRect(role, k) {
    var m = data.montage[role];
    var row = Math.floor(k / m.columns), column = k % m.columns;
    return [column * (m.tile[0] + m.gap), row * (m.tile[1] + m.gap), m.tile[0], m.tile[1]];
  }

  // Draw filter k of one role into a canvas, once its montage has loaded.
  function drawTile(role, k, longest) {
    var rect = tileRect(role, k);
    var scale = Math.max(1, Math.floor(longest / Math.max(rect[2], rect[3])));
    var canvas = document.createElement("canvas");
    canvas.width = rect[2] * scale;
    canvas.height = rect[3] * scale;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", role + " image, filter " + k);
    var img = montages[role];
    function paint() {
      var context = canvas.getContext("2d");
      context.imageSmoothingEnabled = false;
      context.drawImage(img, rect[0], rect[1], rect[2], rect[3], 0, 0, canvas.width, canvas.height);
    }
    if (img.complete && img.naturalWidth) paint();
    else {
      img.loading = "eager";
      img.addEventListener("load", paint, { once: true });
    }
    return canvas;
  }

  function element(tag, text, className) {
    var node = document.createElement(tag);
    if (text) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  var viewer = document.getElementById("filter-viewer");
  function show(filters) {
    viewer.replaceChildren();
    var close = element("a", "close ×", "viewer-close");
    close.href = "#maps";
    viewer.append(element("h3", filters.length > 1 ? "Filters " + filters.join(" and ") : "Filter " + filters[0]), close);
    filters.forEach(function (k) {
      var page = (data.filter_pages || {})[k];
      if (page) {  // what the filter responds to, and where it fires across the study
        var link = element("a", "filter " + k + ": its page");
        link.href = page;
        viewer.append(element("p", "", "viewer-link"));
        viewer.lastChild.append(link);
      }
      var row = element("div", "", "viewer-row");
      data.roles.forEach(function (role) {
        var figure = element("figure");
        figure.append(drawTile(role, k, 192), element("figcaption", role + " · filter " + k));
        row.append(figure);
      });
      viewer.append(row);
    });
    viewer.hidden = false;
  }

  function route() {
    var match = /^#f(\d+)(?:-f(\d+))?$/.exec(location.hash);
    if (!match || !viewer) {  // without montages on the page there is nothing to show a filter from
      if (viewer) viewer.hidden = true;
      return;
    }
    var filters = [match[1], match[2]].filter(Boolean).map(Number).filter(function (k) {
      return k < data.channels;
    });
    if (filters.length) show(filters);
  }
  window.addEventListener("hashchange", route);
  route();

  // Which filter a pixel (x, y) of a montage belongs to; null in the gaps.
  function filterAt(role, x, y) {
    var m = data.montage[role];
    var cellWidth = m.tile[0] + m.gap, cellHeight = m.tile[1] + m.gap;
    var column = Math.floor(x / cellWidth), row = Math.floor(y / cellHeight);
    if (x - column * cellWidth >= m.tile[0] || y - row * cellHeight >= m.tile[1]) return null;
    if (column >= m.columns) return null;
    var k = row * m.columns + column;
    return k < data.channels ? k : null;
  }
  Object.keys(montages).forEach(function (role) {
    montages[role].addEventListener("figure-reading", function (event) {
      var k = filterAt(role, event.detail.x, event.detail.y);
      if (k === null) return;
      event.detail.text = "filter " + k + " (" + role + " image)";
      event.detail.href = "#f" + k;
    });
  });

  // The correlation heatmap: which cell is under the pointer.
  var figure = document.getElementById("correlation-map");
  if (!figure || !data.heatmap) return;
  var heatmap = figure.querySelector("img.heatmap-image");
  var tip = figure.querySelector(".heatmap-tip");
  function cellAt(event) {
    var box = heatmap.getBoundingClientRect();
    var scale = data.heatmap.size[0] / box.width;
    return cellAtPixel((event.clientX - box.left) * scale, (event.clientY - box.top) * scale);
  }
  // The cell at (x, y) in the image's pixels, or null outside the matrix.
  function cellAtPixel(x, y) {
    var axes = data.heatmap.axes, n = data.heatmap.channels;
    if (x < axes[0] || x >= axes[2] || y < axes[1] || y >= axes[3]) return null;
    return {
      i: Math.floor(((y - axes[1]) / (axes[3] - axes[1])) * n),
      j: Math.floor(((x - axes[0]) / (axes[2] - axes[0])) * n),
    };
  }
  heatmap.addEventListener("mousemove", function (event) {
    var cell = cellAt(event);
    if (!cell) {
      tip.hidden = true;
      return;
    }
    var pages = data.filter_pages || {};
    var withPages = [cell.i, cell.j].filter(function (k) { return pages[k]; }).length;
    tip.replaceChildren(element("p", "filters " + cell.i + " and " + cell.j + " (style image)" +
      (withPages ? "; click for their maps and pages" : "")));
    var row = element("div", "", "viewer-row");
    row.append(drawTile("style", cell.i, 96), drawTile("style", cell.j, 96));
    tip.append(row);
    tip.hidden = false;
  });
  heatmap.addEventListener("mouseleave", function () {
    tip.hidden = true;
  });
  heatmap.addEventListener("click", function (event) {
    var cell = cellAt(event);
    if (cell) location.hash = "f" + cell.i + "-f" + cell.j;
  });
  heatmap.addEventListener("figure-reading", function (event) {
    var cell = cellAtPixel(event.detail.x + 0.5, event.detail.y + 0.5);
    if (!cell) return;
    event.detail.text = "row " + cell.i + ", column " + cell.j + ": filters " + cell.i + " and " + cell.j + " (style image)";
    event.detail.href = "#f" + cell.i + "-f" + cell.j;
  });
})();
