// Keys for reading a study without the mouse, on every page: ← and → go to the previous and
// next page of the same kind (the layer strip's neighbours on a layer page, the previous and
// next pair on a pair page; the page's <link rel="prev|next">), "/" goes to the index's filter,
// "?" shows these keys.  Keys typed into a field, or with a modifier, are left alone.  No
// request is made: it works from file:// and offline.
(function () {
  "use strict";
  var help = null;

  function typing(target) {
    var name = target && target.tagName;
    return name === "INPUT" || name === "TEXTAREA" || name === "SELECT" ||
      (target && target.isContentEditable);
  }

  function go(rel) {
    var link = document.querySelector('link[rel="' + rel + '"]');
    if (!link) return false;
    window.location.href = link.href;
    return true;
  }

  function row(keys, what) {
    var item = document.createElement("tr");
    var head = document.createElement("th");
    head.scope = "row";
    keys.forEach(function (key) {
      var kbd = document.createElement("kbd");
      kbd.textContent = key;
      head.appendChild(kbd);
    });
    var cell = document.createElement("td");
    cell.textContent = what;
    item.appendChild(head);
    item.appendChild(cell);
    return item;
  }

  function showHelp() {
    if (!help) {
      help = document.createElement("dialog");
      help.className = "keys-help";
      help.setAttribute("aria-labelledby", "keys-help-title");
      var title = document.createElement("h2");
      title.id = "keys-help-title";
      title.textContent = "Keys";
      var table = document.createElement("table");
      table.appendChild(row(["←", "→"], "previous and next layer on a layer page, pair on a pair page"));
      table.appendChild(row(["/"], "filter the pairs (on the index)"));
      table.appendChild(row(["?"], "show these keys"));
      table.appendChild(row(["+", "−", "0"], "larger, smaller, the image's own pixels (a figure opened at full size)"));
      table.appendChild(row(["Esc"], "close"));
      var close = document.createElement("button");
      close.type = "button";
      close.textContent = "Close";
      close.addEventListener("click", function () { help.close(); });
      help.appendChild(title);
      help.appendChild(table);
      help.appendChild(close);
      document.body.appendChild(help);
    }
    if (!help.open) help.showModal();
  }

  // Said where a reader looks for such things, and only where the keys work (with JavaScript).
  var footer = document.querySelector(".site-footer");
  if (footer) {
    var hint = document.createElement("p");
    hint.className = "keys-hint";
    hint.appendChild(document.createTextNode("Keys: press "));
    var kbd = document.createElement("kbd");
    kbd.textContent = "?";
    hint.appendChild(kbd);
    footer.appendChild(hint);
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    // A dialog open (this help, the figure viewer) has the keys to itself.
    if (typing(event.target) || document.querySelector("dialog[open]")) return;
    var handled = false;
    if (event.key === "ArrowLeft") handled = go("prev");
    else if (event.key === "ArrowRight") handled = go("next");
    else if (event.key === "/") {
      var filter = document.getElementById("index-filter");
      if (filter && filter.offsetParent !== null) {
        filter.focus();
        handled = true;
      }
    } else if (event.key === "?") {
      showHelp();
      handled = true;
    }
    if (handled) event.preventDefault();
  });
})();
