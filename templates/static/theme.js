// The colour scheme: the system's (the default), light or dark, chosen with a button in the
// header and remembered in the browser (localStorage) for every page of the site, as in
// mkdocs-material, Quarto and the pydata theme.  Loaded in <head> without defer: the choice is
// set on <html> before the page is painted, so a page never flashes in the other scheme.
// style.css draws each scheme from html[data-scheme]; the figures have transparent backgrounds
// and follow.  No request is made: it works from file:// and offline (where a browser keeps no
// storage for file:// pages, the button still switches the page it is on).
(function () {
  "use strict";
  var KEY = "reportgen-colour-scheme";
  var CHOICES = ["system", "light", "dark"];
  var NAMES = { system: "System", light: "Light", dark: "Dark" };
  var root = document.documentElement;
  var system = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  var button = null;

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return CHOICES.indexOf(value) === -1 ? "system" : value;
    } catch (error) {  // storage refused (a browser's privacy setting)
      return "system";
    }
  }

  function store(choice) {
    try {
      if (choice === "system") window.localStorage.removeItem(KEY);
      else window.localStorage.setItem(KEY, choice);
    } catch (error) {
      // Not remembered, but this page still switches.
    }
  }

  function shown(choice) {  // the scheme the page is in
    if (choice !== "system") return choice;
    return system && system.matches ? "dark" : "light";
  }

  function label() {
    if (!button) return;
    var choice = root.getAttribute("data-scheme-choice") || "system";
    var next = CHOICES[(CHOICES.indexOf(choice) + 1) % CHOICES.length];
    button.querySelector(".scheme-name").textContent = NAMES[choice];
    button.setAttribute("data-choice", choice);
    button.title = (choice === "system" ? "Colour scheme: the system's, " + shown(choice) + " now" :
      "Colour scheme: " + choice) + ". Click for " + (next === "system" ? "the system's" : next) + ".";
  }

  function apply(choice) {
    root.setAttribute("data-scheme-choice", choice);
    if (choice === "system") root.removeAttribute("data-scheme");
    else root.setAttribute("data-scheme", choice);
    label();
  }

  apply(stored());

  // Another tab of the site switched: follow it.
  window.addEventListener("storage", function (event) {
    if (event.key === KEY || event.key === null) apply(stored());
  });
  if (system && system.addEventListener) system.addEventListener("change", label);

  function addButton() {
    var header = document.querySelector(".site-header");
    if (!header || button) return;
    button = document.createElement("button");
    button.type = "button";
    button.className = "scheme-switch";
    var hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = "Colour scheme: ";
    var icon = document.createElement("span");
    icon.className = "scheme-icon";
    icon.setAttribute("aria-hidden", "true");
    var name = document.createElement("span");
    name.className = "scheme-name";
    button.appendChild(icon);
    button.appendChild(hidden);
    button.appendChild(name);
    button.addEventListener("click", function () {
      var choice = root.getAttribute("data-scheme-choice") || "system";
      var next = CHOICES[(CHOICES.indexOf(choice) + 1) % CHOICES.length];
      store(next);
      apply(next);
    });
    header.appendChild(button);
    label();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", addButton);
  else addButton();
})();
