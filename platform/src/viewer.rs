//! Who a callback's viewer is, as the sandbox hands it to a 0.2.0 guest (`host.viewer`)
//! and to its data sources: the user id, their email and the names of their teams in the
//! app's tenant.
//!
//! The rules: an anonymous request has no viewer; a person (or the owner of an API token)
//! is the viewer, with their email only when they are a member of the app's tenant (an
//! app must not learn the addresses of outsiders opening a public app) and their groups
//! only from that tenant. The facts are looked up only for components that can see them
//! (`sandbox::Component::sees_viewer`), so 0.1.0 apps pay nothing.

use crate::ids::TenantId;
use crate::policy::Principal;
use crate::store::{self, Store};

/// Whether a call of `component` gets the viewer at all: only components that can see it
/// (0.2.0) and never a memoized callback, whose answer is shared between viewers.
pub fn needed(component: &sandbox::Dashboard, memoized: bool) -> bool {
    component.sees_viewer() && !memoized
}

/// The viewer to pass in `sandbox::CallOptions::viewer` for `principal`'s call of
/// `component`, an app of `tenant`.
pub async fn for_call(
    store: &Store,
    component: &sandbox::Dashboard,
    tenant: TenantId,
    principal: &Principal,
) -> store::Result<Option<sandbox::Viewer>> {
    if !component.sees_viewer() {
        return Ok(None);
    }
    let Some(user) = principal.user_id() else {
        return Ok(None);
    };
    let Some(facts) = store.viewer_facts(tenant, user).await? else {
        return Ok(None);
    };
    Ok(Some(sandbox::Viewer {
        user_id: user.0.to_string(),
        email: facts.member.then_some(facts.email),
        groups: facts.teams,
    }))
}
