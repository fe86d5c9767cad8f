// The compare slider of a pair page: the result over the content image (or the style image),
// split where the reader puts it, by dragging (mouse, pen or touch) or with the arrow keys on
// the slider, which a screen reader announces.  Without JavaScript the page keeps its images
// side by side.  No request is made beyond the page's own images.
(function () {
  "use strict";
  var figures = document.querySelectorAll("[data-compare-role]");
  var images = {};
  Array.prototype.forEach.call(figures, function (figure) {
    var img = figure.querySelector("img");
    if (img) images[figure.getAttribute("data-compare-role")] = img;
  });
  var anchor = document.getElementById("compare-anchor");
  if (!images.result || !images.content || !anchor) return;

  var section = document.createElement("div");
  section.className = "compare";
  var frame = document.createElement("div");
  frame.className = "compare-frame";
  var under = document.createElement("img");
  under.src = images.result.src;
  under.alt = "result, compared";
  var over = document.createElement("img");
  over.className = "compare-over";
  over.alt = "content image, compared with the result";
  var line = document.createElement("div");
  line.className = "compare-line";
  frame.appendChild(under);
  frame.appendChild(over);
  frame.appendChild(line);
  frame.style.setProperty("aspect-ratio", images.result.naturalWidth && images.result.naturalHeight ?
    images.result.naturalWidth + " / " + images.result.naturalHeight : "auto");

  var controls = document.createElement("div");
  controls.className = "compare-controls";
  var choice = document.createElement("select");
  choice.setAttribute("aria-label", "Image to compare with the result");
  ["content", "style"].forEach(function (role) {
    if (!images[role]) return;
    var option = document.createElement("option");
    option.value = role;
    option.textContent = role + " image";
    choice.appendChild(option);
  });
  var slider = document.createElement("input");
  slider.type = "range";
  slider.min = "0";
  slider.max = "100";
  slider.step = "1";
  slider.value = "50";
  slider.className = "compare-slider";
  var label = document.createElement("label");
  label.appendChild(document.createTextNode("Compare the result with the "));
  label.appendChild(choice);
  controls.appendChild(label);
  controls.appendChild(slider);
  section.appendChild(frame);
  section.appendChild(controls);
  anchor.appendChild(section);

  function show() {
    var role = choice.value;
    var split = Number(slider.value);
    over.src = images[role].src;
    over.alt = role + " image, compared with the result";
    frame.style.setProperty("--split", split + "%");
    slider.setAttribute("aria-label", "Split between the " + role + " image (left) and the result (right)");
    slider.setAttribute("aria-valuetext", split + "% " + role + " image, " + (100 - split) + "% result");
  }

  function fromPointer(event) {
    var box = frame.getBoundingClientRect();
    var share = (event.clientX - box.left) / box.width;
    slider.value = String(Math.round(Math.min(1, Math.max(0, share)) * 100));
    show();
  }

  frame.addEventListener("pointerdown", function (event) {
    frame.setPointerCapture(event.pointerId);
    fromPointer(event);
    event.preventDefault();
  });
  frame.addEventListener("pointermove", function (event) {
    if (frame.hasPointerCapture(event.pointerId)) fromPointer(event);
  });
  slider.addEventListener("input", show);
  choice.addEventListener("change", show);
  images.result.addEventListener("load", function () {
    frame.style.setProperty("aspect-ratio", images.result.naturalWidth + " / " + images.result.naturalHeight);
  });
  show();
})();
