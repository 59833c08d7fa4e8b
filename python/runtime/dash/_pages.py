"""Dash's multi-page apps (`use_pages=True`): the page registry, the inference of paths,
names and images, and the routing that the router callback does, as Dash 4.4.1 does them.

`Dash(use_pages=True)` imports every module of the pages folder that calls
`register_page` while the app is made, as Dash does; the router callback and the title's
clientside callback are added after the app's own (`router_callbacks`).
"""
import collections
import importlib.util
import os
import re
import sys
from fnmatch import fnmatch
from keyword import iskeyword
from urllib.parse import parse_qs

from . import exceptions

# What `Dash(...)` tells the pages: `name`, `title`, `description`, `pages_folder` (a
# path, or None), `assets_folder`.
CONFIG = {}
PAGE_REGISTRY = collections.OrderedDict()

_IMAGE_EXTENSIONS = ("apng", "avif", "gif", "jpeg", "jpg", "png", "svg", "webp")


def _infer_image(module):
    """`assets/<module>.<ext>`, else `assets/app.<ext>`, else `assets/logo.<ext>`."""
    folder = CONFIG.get("assets_folder")
    page_id = module.split(".")[-1]
    files = []
    if folder and os.path.isdir(folder):
        files = [f for f in os.listdir(folder) if os.path.isfile(os.path.join(folder, f))]
    app_file = logo_file = None
    for name in files:
        stem, _, extension = name.partition(".")
        if extension.lower() not in _IMAGE_EXTENSIONS:
            continue
        if stem in (page_id, page_id.replace("_", "-")):
            return name
        if stem == "app":
            app_file = name
        if stem == "logo":
            logo_file = name
    return app_file or logo_file


def _module_name_to_page_name(module_name):
    return module_name.split(".")[-1].replace("_", " ").capitalize()


def _infer_path(module_name, template):
    if template is not None:
        # Each variable becomes "none" in the default path.
        path = re.sub("<.*?>", "none", template)
    elif CONFIG.get("pages_folder"):
        pages_module = os.path.basename(CONFIG["pages_folder"].rstrip(os.sep))
        path = module_name.split(pages_module)[-1].replace("_", "-").replace(".", "/").lower()
    else:
        path = module_name.replace("_", "-").replace(".", "/").lower()
    return path if path.startswith("/") else "/" + path


def _root_path(name):
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(file)) if file else os.getcwd()


def _is_package(module_name):
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    return bool(file) and file.endswith("__init__.py")


def _path_to_module_name(path):
    return str(path).replace(".py", "").strip(os.sep).replace(os.sep, ".")


def _infer_module_name(page_path):
    folder = CONFIG["pages_folder"]
    module = _path_to_module_name(page_path.split(folder)[-1])
    root = _root_path(CONFIG.get("name"))
    parent = folder[len(root):] if folder.startswith(root) else folder
    module_name = f"{_path_to_module_name(parent)}.{module}"
    if _is_package(CONFIG.get("name")):
        module_name = f"{CONFIG['name']}.{module_name}"
    return module_name


def _parse_query_string(search):
    if not search or not search.startswith("?"):
        return {}
    parsed = parse_qs(search[1:], keep_blank_values=True)
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def _parse_path_variables(pathname, path_template):
    """`{"asset_id": "a100"}` for `assets/a100` and the template `/assets/<asset_id>`."""
    if not fnmatch(pathname, re.sub("<.*?>", "*", path_template)):
        return None
    names = re.findall("<(.*?)>", path_template)
    values = re.findall(re.sub("<.*?>", "(.*)", path_template), pathname)
    values = values[0] if isinstance(values[0], tuple) else values
    return dict(zip(names, values))


def _validate_template(template):
    for name in re.findall("<(.*?)>", template):
        if not name.isidentifier() or iskeyword(name):
            raise Exception(
                f'`{name}` is not a valid Python variable name in `path_template`: "{template}".'
            )


def register_page(
    module,
    path=None,
    path_template=None,
    name=None,
    order=None,
    title=None,
    description=None,
    image=None,
    image_url=None,
    redirect_from=None,
    layout=None,
    **kwargs,
):
    """Adds a page to `dash.page_registry` (see Dash's documentation of `register_page`):
    the supplied values under `supplied_<key>` and the inferred ones under `<key>`."""
    from . import get_relative_path

    if not CONFIG.get("assets_folder"):
        raise exceptions.PageError("`dash.register_page()` must be called after app instantiation")
    if not isinstance(module, str):
        raise exceptions.PageError(
            "The first attribute of dash.register_page() must be a string or '__name__'"
        )
    page = dict(
        module=module,
        supplied_path=path,
        path_template=path_template,
        path=path if path is not None else _infer_path(module, path_template),
        supplied_name=name,
        name=name if name is not None else _module_name_to_page_name(module),
    )
    app_title = CONFIG.get("title", "Dash")
    page.update(
        supplied_title=title,
        title=title if title is not None else app_title if app_title != "Dash" else page["name"],
    )
    page.update(
        description=description or CONFIG.get("description") or "",
        order=order,
        supplied_order=order,
        supplied_layout=layout,
        **kwargs,
    )
    page.update(
        supplied_image=image,
        image=image if image is not None else _infer_image(module),
        image_url=image_url,
    )
    # Dash adds a redirecting route for each; Tessera serves every path under the app
    # with the index page, whose router shows the page of the path it is given.
    page.update(redirect_from=None)
    PAGE_REGISTRY[module] = page
    if page["path_template"]:
        _validate_template(page["path_template"])
    if layout is not None:
        PAGE_REGISTRY[module]["layout"] = layout
    order_supplied = any(p["supplied_order"] is not None for p in PAGE_REGISTRY.values())
    for p in PAGE_REGISTRY.values():
        p["order"] = 0 if p["path"] == "/" and not order_supplied else p["supplied_order"]
        p["relative_path"] = get_relative_path(p["path"])
    # Numeric orders first, then other orders, then none; by module within an order.
    for p in sorted(
        PAGE_REGISTRY.values(),
        key=lambda i: (
            i["order"] is None,
            i["order"] if isinstance(i["order"], (int, float)) else float("inf"),
            str(i["order"]),
            i["module"],
        ),
    ):
        PAGE_REGISTRY.move_to_end(p["module"])


def path_to_page(path_id):
    """The page whose path (or path template) fits `path_id` and its path variables."""
    variables = None
    for page in PAGE_REGISTRY.values():
        if page["path_template"]:
            variables = _parse_path_variables(path_id, page["path_template"].strip("/"))
            if variables:
                return page, variables
        if path_id == page["path"].strip("/"):
            return page, variables
    return {}, None


def import_pages(pages_folder):
    """Imports every page module of `pages_folder` that calls `register_page`, as Dash does
    when the app is made; a page without its own layout takes the module's `layout`."""
    for root, dirs, files in os.walk(pages_folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for file in sorted(files):
            if file.startswith(("_", ".")) or not file.endswith(".py"):
                continue
            page_path = os.path.join(root, file)
            with open(page_path, encoding="utf-8") as source:
                if "register_page" not in source.read():
                    continue
            module_name = _infer_module_name(page_path)
            spec = importlib.util.spec_from_file_location(module_name, page_path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[module_name] = module
            if module_name in PAGE_REGISTRY and not PAGE_REGISTRY[module_name]["supplied_layout"]:
                if not hasattr(module, "layout"):
                    raise exceptions.NoLayoutException(
                        f'No layout found in module {module_name}\n'
                        'A variable or a function named "layout" is required.'
                    )
                PAGE_REGISTRY[module_name]["layout"] = module.layout


def check_registry():
    """Dash's checks before the first request: one module per path, a layout each."""
    modules_by_path = {}
    for page in PAGE_REGISTRY.values():
        modules_by_path.setdefault(page["path"], []).append(page["module"])
    for modules in modules_by_path.values():
        if len(modules) > 1:
            raise Exception(f"modules {modules} have duplicate paths")
    for page in PAGE_REGISTRY.values():
        if "layout" not in page:
            raise exceptions.NoLayoutException(
                f"No layout in module `{page['module']}` in dash.page_registry"
            )
