/* Draws the page's Vega-Lite charts. Each [data-vega] element names the JSON data block that
   holds its spec (built on the server from stored figures). Vega's expression interpreter
   stands in for eval, so the strict Content-Security-Policy holds. */
(function () {
  "use strict";
  var options = {
    actions: false, renderer: "svg", tooltip: false, defaultStyle: false,
    ast: true, expr: vegaInterpreter.expressionInterpreter
  };
  document.querySelectorAll("[data-vega]").forEach(function (node) {
    var spec = JSON.parse(document.getElementById(node.getAttribute("data-vega")).textContent);
    vegaEmbed(node, spec, options).catch(function (error) {
      node.textContent = "This chart could not be drawn: " + error.message;
    });
  });
})();
