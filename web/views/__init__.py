"""Page views, one module per area; each view is thin: a form, a service or selector call, a template."""
