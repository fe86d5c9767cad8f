// Every figure at its full size: a button on each figure (and a click on a figure that is no link
// and no control of its own) opens it in a viewer over the page, as Quarto's lightbox does.  The
// viewer starts at the image's own pixels, or enlarged by a whole number where that fits the
// window, and enlarges by whole numbers, pixel for pixel (no smoothing): one cell of a Gram, one
// position of a feature map, one pixel of a result stays one sharp square.  Pointing names what
// is under the pointer: the pixel, and the filter or the cell where the page's own script
// (filters.js) reads one.  Esc closes it; its link, like the figure's own, opens the file.
//
// The hook for readings: the viewer dispatches "figure-reading" on the page's <img>, with
// detail {x, y} in the image's pixels; a listener sets detail.text (what is there) and may set
// detail.href (where a click takes the reader).  No request is made beyond the page's own
// images: it works from file:// and offline.
(function () {
  "use strict";
  // What counts as a figure: images of <figure>s, except the legends in captions, the index's
  // cards (links to pages) and the compare slider's copies.
  var FIGURES = "main figure img";
  var NOT_FIGURES = "figcaption, .pair-card, .index-table, .compare";
  // Images whose click already means something: a link, the heatmap (opens a pair of filters),
  // the montages (their tiles are links).
  var OWN_CLICK = "a, .heatmap, .tiles";
  var STEPS = [0.125, 0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];

  var images = Array.prototype.filter.call(document.querySelectorAll(FIGURES), function (img) {
    return !img.closest(NOT_FIGURES);
  });
  if (!images.length || typeof HTMLDialogElement === "undefined") return;

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function button(className, text, label) {
    var node = element("button", className, text);
    node.type = "button";
    if (label) {
      node.setAttribute("aria-label", label);
      node.title = label;
    }
    return node;
  }

  // --- the viewer, made once, on first use ---------------------------------------------------
  var viewer = null, stage, picture, title, reading, scaleOut, fileLink, source = null, scale = 1;

  function makeViewer() {
    viewer = element("dialog", "zoom");
    viewer.setAttribute("aria-labelledby", "zoom-title");
    var bar = element("div", "zoom-bar");
    title = element("h2", "zoom-title");
    title.id = "zoom-title";
    reading = element("p", "zoom-reading");
    var tools = element("div", "zoom-tools");
    var smaller = button("zoom-out", "−", "Smaller");
    scaleOut = element("output", "zoom-scale");
    var larger = button("zoom-in", "+", "Larger");
    var actual = button("zoom-actual", "1:1", "The image's own pixels");
    var fit = button("zoom-fit", "Fit", "Fit the window");
    fileLink = element("a", "zoom-file", "Open the file");
    var close = button("zoom-close", "Close");
    tools.append(smaller, scaleOut, larger, actual, fit, fileLink, close);
    bar.append(title, tools, reading);
    stage = element("div", "zoom-stage");
    stage.tabIndex = 0;  // scrolled by the arrow keys once focused
    stage.setAttribute("aria-label", "The figure at full size; arrows scroll it");
    picture = element("img", "zoom-image");
    picture.alt = "";
    picture.draggable = false;
    stage.append(picture);
    viewer.append(bar, stage);
    document.body.append(viewer);

    smaller.addEventListener("click", function () { step(-1); });
    larger.addEventListener("click", function () { step(1); });
    actual.addEventListener("click", function () { setScale(1); });
    fit.addEventListener("click", function () { setScale(fitted(false)); });
    close.addEventListener("click", function () { viewer.close(); });
    viewer.addEventListener("close", function () {
      picture.removeAttribute("src");
      source = null;
    });
    viewer.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.key === "+" || event.key === "=") step(1);
      else if (event.key === "-" || event.key === "_") step(-1);
      else if (event.key === "0") setScale(1);
      else return;
      event.preventDefault();
    });
    picture.addEventListener("pointermove", read);
    picture.addEventListener("pointerleave", function () { reading.textContent = ""; });
    picture.addEventListener("click", function (event) {
      var found = readAt(event);
      if (found && found.href) {
        viewer.close();
        window.location.href = found.href;
      }
    });
    // Dragging pans, as in a map; the scroll bars, the wheel and the keys do too.
    var drag = null;
    stage.addEventListener("pointerdown", function (event) {
      if (event.button !== 0 || event.pointerType !== "mouse") return;
      drag = { x: event.clientX, y: event.clientY, left: stage.scrollLeft, top: stage.scrollTop, moved: false };
    });
    stage.addEventListener("pointermove", function (event) {
      if (!drag) return;
      var dx = event.clientX - drag.x, dy = event.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      drag.moved = true;
      stage.classList.add("dragging");
      stage.scrollLeft = drag.left - dx;
      stage.scrollTop = drag.top - dy;
    });
    function endDrag(event) {
      if (drag && drag.moved && event.type === "pointerup") {
        // A drag is no click on what lies under its end.
        stage.addEventListener("click", function (click) { click.stopPropagation(); }, { capture: true, once: true });
      }
      drag = null;
      stage.classList.remove("dragging");
    }
    stage.addEventListener("pointerup", endDrag);
    stage.addEventListener("pointercancel", endDrag);
  }

  function natural() {
    return [source.naturalWidth, source.naturalHeight];
  }

  // The largest scale at which the image fits the stage: a whole number when it is at least 1
  // (pixel for pixel), else the exact fraction (``atLeastOne``: never below 1).
  function fitted(atLeastOne) {
    var size = natural();
    var fit = Math.min(stage.clientWidth / size[0], stage.clientHeight / size[1]);
    if (fit >= 1) return Math.floor(fit);
    return atLeastOne ? 1 : fit;
  }

  function setScale(value) {
    var size = natural();
    // Keep the point at the stage's centre where it is.
    var centre = [
      (stage.scrollLeft + stage.clientWidth / 2) / (picture.offsetWidth || 1),
      (stage.scrollTop + stage.clientHeight / 2) / (picture.offsetHeight || 1),
    ];
    scale = value;
    picture.style.width = size[0] * scale + "px";
    picture.style.height = size[1] * scale + "px";
    // Whole-number enlargements copy pixels; shrinking averages them, as it should.
    picture.classList.toggle("pixelated", scale >= 1 && Math.round(scale) === scale);
    scaleOut.textContent = scale >= 1 ? "×" + Math.round(scale * 100) / 100 : Math.round(scale * 100) + "%";
    stage.scrollLeft = centre[0] * picture.offsetWidth - stage.clientWidth / 2;
    stage.scrollTop = centre[1] * picture.offsetHeight - stage.clientHeight / 2;
  }

  function step(direction) {
    var next = direction > 0 ?
      STEPS.filter(function (s) { return s > scale + 1e-9; })[0] :
      STEPS.filter(function (s) { return s < scale - 1e-9; }).pop();
    if (next !== undefined) setScale(next);
  }

  function readAt(event) {
    if (!source) return null;
    var box = picture.getBoundingClientRect();
    var size = natural();
    var x = Math.floor(((event.clientX - box.left) / box.width) * size[0]);
    var y = Math.floor(((event.clientY - box.top) / box.height) * size[1]);
    if (x < 0 || y < 0 || x >= size[0] || y >= size[1]) return null;
    var detail = { x: x, y: y, text: null, href: null };
    source.dispatchEvent(new CustomEvent("figure-reading", { detail: detail }));
    return detail;
  }

  function read(event) {
    var found = readAt(event);
    if (!found) {
      reading.textContent = "";
      return;
    }
    reading.textContent = (found.text ? found.text + " · " : "") + "pixel " + found.x + ", " + found.y +
      (found.href ? " · click to open" : "");
    picture.classList.toggle("has-link", Boolean(found.href));
  }

  function open(img) {
    if (!viewer) makeViewer();
    source = img;
    var caption = img.closest("figure") && img.closest("figure").querySelector("figcaption");
    title.textContent = img.alt || (caption ? caption.textContent.trim() : "Figure");
    reading.textContent = "";
    fileLink.href = img.currentSrc || img.src;
    picture.alt = img.alt;
    scaleOut.textContent = "";
    function show() {
      if (source !== img) return;
      picture.style.width = picture.style.height = "";
      setScale(fitted(true));
      stage.scrollLeft = stage.scrollTop = 0;
      stage.focus();
    }
    picture.src = img.currentSrc || img.src;
    if (!viewer.open) viewer.showModal();
    if (img.complete && img.naturalWidth) show();
    else {  // a lazy image not loaded yet: load it now
      img.loading = "eager";
      img.addEventListener("load", show, { once: true });
    }
  }

  // --- a button on each figure, at the image's top right corner -----------------------------
  var placed = [];
  function placeAll() {
    // Every box measured first, then every button moved: measuring between moves would lay the
    // page out once per figure (a page of a large study has hundreds).
    var boxes = placed.map(function (entry) {
      return [entry.figure.getBoundingClientRect(), entry.img.getBoundingClientRect()];
    });
    placed.forEach(function (entry, k) {
      var figureBox = boxes[k][0], box = boxes[k][1];
      // Not before the image has a size (a lazy image not loaded yet), nor over most of a
      // thumbnail (those open with a click on them, or from the page they link to).
      entry.button.hidden = box.width < 112 || box.height < 56;
      entry.button.style.right = figureBox.right - box.right + 4 + "px";
      entry.button.style.top = box.top - figureBox.top + 4 + "px";
    });
  }
  var observer = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(placeAll);

  images.forEach(function (img) {
    var figure = img.closest("figure");
    figure.classList.add("zoomable");
    var what = img.alt ? img.alt.charAt(0).toLowerCase() + img.alt.slice(1) : "the figure";
    var control = button("zoom-open", "", "Open at full size: " + what);
    control.append(element("span", "zoom-icon"));
    control.addEventListener("click", function () { open(img); });
    figure.append(control);
    placed.push({ figure: figure, img: img, button: control });
    if (observer) {
      observer.observe(img);
      observer.observe(figure);
    }
    if (!img.closest(OWN_CLICK)) {
      img.classList.add("zoom-click");
      img.addEventListener("click", function () { open(img); });
    }
  });
  if (!observer) {
    window.addEventListener("resize", placeAll);
    window.addEventListener("load", placeAll);
    placeAll();
  }
})();
