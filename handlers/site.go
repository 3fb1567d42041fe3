package handlers

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"sselab/views"
)

// Site serves the home page and the 404 page.
type Site struct {
	home views.HomeVM
}

// NewSite takes the demos and the route table the home page shows.
func NewSite(demos []views.Demo, routes []views.RouteRow) *Site {
	return &Site{home: views.HomeVM{Demos: demos, Routes: routes}}
}

// Home lists the demos and every route with a curl command.
func (h *Site) Home(c echo.Context) error {
	base := c.Scheme() + "://" + c.Request().Host
	vm := h.home
	vm.Routes = slices.Clone(vm.Routes)
	for i := range vm.Routes {
		vm.Routes[i].Curl = strings.ReplaceAll(vm.Routes[i].Curl, "{base}", base)
	}
	return render(c, http.StatusOK, views.HomePage(vm))
}

// NotFound renders the 404 page.
func (h *Site) NotFound(c echo.Context) error {
	return render(c, http.StatusNotFound, views.NotFoundPage(c.Request().URL.Path))
}

// Health answers 200 ok while the server runs.
func Health(c echo.Context) error {
	return c.String(http.StatusOK, "ok\n")
}
