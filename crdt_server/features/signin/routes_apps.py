"""Native apps: the files that let an app claim this server's sign-in links, and a device
session for an app (its secret in the answer's body, never a cookie).

- ``GET /.well-known/apple-app-site-association``: the iOS apps of
  ``CRDT_SERVER_APPLE_APP_IDS`` open ``/app/sign-in-app`` links (universal links);
- ``GET /.well-known/assetlinks.json``: the Android app of
  ``CRDT_SERVER_ANDROID_APP_PACKAGE``, signed with ``CRDT_SERVER_ANDROID_APP_FINGERPRINTS``
  (verified App Links; the app's intent filter names the path).

Each is 404 while its settings are empty. Other features start an app's device session
with :func:`sign_in_app` (an accepted invitation), after :func:`app_sign_in_allowed`.
"""

from __future__ import annotations

from starlette.responses import Response

from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Forbidden, NotFound
from crdt_server.features.signin.domain import APP_LINK_PAGE
from crdt_server.features.signin.extension import DeviceSessions
from crdt_server.features.signin.routes import cookie_allowed, device_label
from crdt_server.features.signin.settings import SignInSettings

__all__ = ["app_link_routes", "app_sign_in_allowed", "sign_in_app"]

app_link_routes = Routes()

_DAY = "public, max-age=86400"


def app_sign_in_allowed(call: ApiCall) -> bool:
    """Whether :func:`sign_in_app` would give this request a device secret: over https (the
    public URL's, else the request's), or to a server that listens on loopback only. No
    ``Origin`` rule: an app is no page of another site."""
    return cookie_allowed(call)


async def sign_in_app(call: ApiCall, person: str, name: str | None) -> str:
    """Start a native app's device session for ``person`` (``name``: what the devices list
    calls it, else the ``User-Agent``): its secret, for the answer's ``device_secret``
    (256 bits, as a cookie's; the store keeps its SHA-256). :class:`Forbidden` when
    :func:`app_sign_in_allowed` is false."""
    if not app_sign_in_allowed(call):
        raise Forbidden("signing in needs https (set CRDT_SERVER_PUBLIC_URL to an https URL)")
    sessions = call.state.extension(DeviceSessions)
    _, secret = await sessions.start_session(person, device_label(call, name))
    return secret


@app_link_routes.get(
    "/.well-known/apple-app-site-association",
    "getAppleAppSiteAssociation",
    "Which iOS apps open this server's native sign-in links (universal links)",
    family="public",
    security="none",
    media_type="application/json",
    errors=(404,),
    description="From `CRDT_SERVER_APPLE_APP_IDS`; 404 while it is empty. The apps claim "
    f"`/app/{APP_LINK_PAGE}` only: a browser's sign-in links still open the browser.",
)
async def apple_app_site_association(call: ApiCall) -> Response:
    apps = call.state.settings.fragment(SignInSettings).apple_apps
    if not apps:
        raise NotFound("this server names no iOS app (CRDT_SERVER_APPLE_APP_IDS)")
    document = {
        "applinks": {
            "details": [
                {
                    "appIDs": list(apps),
                    "components": [
                        {"/": f"/app/{APP_LINK_PAGE}", "comment": "a native app's sign-in"}
                    ],
                }
            ]
        }
    }
    response = json_response(document)
    response.headers["Cache-Control"] = _DAY
    return response


@app_link_routes.get(
    "/.well-known/assetlinks.json",
    "getAndroidAssetLinks",
    "Which Android app opens this server's native sign-in links (App Links)",
    family="public",
    security="none",
    media_type="application/json",
    errors=(404,),
    description="From `CRDT_SERVER_ANDROID_APP_PACKAGE` and "
    "`CRDT_SERVER_ANDROID_APP_FINGERPRINTS`; 404 while they are empty.",
)
async def asset_links(call: ApiCall) -> Response:
    settings = call.state.settings.fragment(SignInSettings)
    if not settings.android_app_package:
        raise NotFound("this server names no Android app (CRDT_SERVER_ANDROID_APP_PACKAGE)")
    document = [
        {
            "relation": ["delegate_permission/common.handle_all_urls"],
            "target": {
                "namespace": "android_app",
                "package_name": settings.android_app_package,
                "sha256_cert_fingerprints": list(settings.android_fingerprints),
            },
        }
    ]
    response = json_response(document)
    response.headers["Cache-Control"] = _DAY
    return response
