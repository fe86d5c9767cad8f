// Filter and sort for the index.  Without it the index lists every pair in manifest order; with
// it, a text box keeps the pairs whose id, title, notes or file names contain what is typed, and
// a menu orders them by a number each pair carries in a data attribute.  No request is made:
// it works from file:// and offline.
(function () {
  "use strict";
  var list = document.getElementById("index-items");
  var tools = document.getElementById("index-tools");
  if (!list || !tools) return;
  var items = Array.prototype.slice.call(list.children);
  var filter = document.getElementById("index-filter");
  var sort = document.getElementById("index-sort");
  var count = document.getElementById("index-count");
  tools.hidden = false;

  function value(item, key) {
    var number = parseFloat(item.getAttribute("data-" + key));
    return isNaN(number) ? null : number;
  }

  function apply() {
    var query = filter.value.trim().toLowerCase();
    var option = sort.options[sort.selectedIndex];
    var key = option.value;
    var descending = option.getAttribute("data-descending") === "true";
    var ordered = items.slice();
    if (key) {
      // Pairs without the number (failed, or not measured) go last; ties keep manifest order.
      ordered.sort(function (a, b) {
        var x = value(a, key), y = value(b, key);
        if (x === null || y === null) return (x === null) - (y === null);
        return descending ? y - x : x - y;
      });
    }
    var shown = 0;
    ordered.forEach(function (item) {
      var match = !query || item.getAttribute("data-search").indexOf(query) !== -1;
      item.hidden = !match;
      if (match) shown += 1;
      list.appendChild(item);
    });
    count.textContent = shown === items.length ? items.length + " pairs" : shown + " of " + items.length + " pairs";
  }

  filter.addEventListener("input", apply);
  sort.addEventListener("change", apply);
  apply();
})();
