(function () {
  var charts = document.querySelectorAll("svg.chart");
  var drawn = 0;
  for (var i = 0; i < charts.length; i++) {
    var plot = charts[i].querySelector("g.plot");
    var box = plot ? plot.getBBox() : null;
    if (box && box.width > 0 && box.height >= 0) drawn++;
  }
  document.body.setAttribute("data-curves-rendered", drawn + "/" + charts.length);
})();
