//! The `app` exports called so that an oversized answer is refused before the host copies
//! it.
//!
//! The bindings `bindgen!` generates lift every returned string into a `String`, so a guest
//! returning 100 MiB made the host allocate 100 MiB before the output cap was looked at.
//! Here the exports are called through typed functions whose strings are [`CappedStr`]:
//! while the result is lifted, the length the guest declared is compared with the cap
//! first, and only a string within the cap is copied.
//!
//! The string cannot be kept in guest memory ([`WasmStr`]) and looked at after the call:
//! wasmtime runs the guest's `post-return` (which frees the string) inside
//! `TypedFunc::call`, before returning. So the check has to happen during the lift, and
//! the cap reaches the lift through a thread-local set around the call (the lift runs on
//! the calling thread, inside `TypedFunc::call`).

use crate::state::State;
use std::cell::Cell;
use wasmtime::Store;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentExportIndex, ComponentType, Instance, Lift, WasmStr};

/// A string the guest returned: copied if it fits the call's output cap, else only its
/// length.
pub(crate) enum CappedStr {
    /// The string, at most the cap (in the guest's code units; see [`CappedStr::into_string`]).
    Fits(String),
    /// The string was not copied; its length in the guest's code units (bytes for UTF-8).
    TooLarge(usize),
}

impl CappedStr {
    /// The string, or [`crate::Error::OutputTooLarge`]. The length checked during the lift
    /// is in the guest's code units, which for UTF-16 guests is less than the UTF-8 length,
    /// so the copy is checked again here.
    pub(crate) fn into_string(self, limit: usize) -> crate::Result<String> {
        match self {
            CappedStr::Fits(text) if text.len() <= limit => Ok(text),
            CappedStr::Fits(text) => Err(crate::Error::OutputTooLarge {
                size: text.len(),
                limit,
            }),
            CappedStr::TooLarge(size) => Err(crate::Error::OutputTooLarge { size, limit }),
        }
    }

    /// Copies the string of `len` (the length the guest declared) unless it is over the
    /// cap. `copy` and `check` are wasmtime's own lifts of a `String` and of a [`WasmStr`]
    /// (which checks the bounds without copying); exactly one of them runs, on `cx`.
    fn lift<C>(
        cx: C,
        len: u32,
        copy: impl FnOnce(C) -> wasmtime::Result<String>,
        check: impl FnOnce(C) -> wasmtime::Result<WasmStr>,
    ) -> wasmtime::Result<CappedStr> {
        // Code units are never more than the UTF-8 bytes they decode to.
        let units = code_units(len);
        if units > OUTPUT_CAP.with(Cell::get) {
            check(cx)?;
            Ok(CappedStr::TooLarge(units))
        } else {
            copy(cx).map(CappedStr::Fits)
        }
    }
}

thread_local! {
    /// The output cap of the call running on this thread; unlimited outside a call.
    static OUTPUT_CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Sets [`OUTPUT_CAP`] for as long as it lives.
struct CapGuard(usize);

impl CapGuard {
    fn set(cap: usize) -> CapGuard {
        CapGuard(OUTPUT_CAP.replace(cap))
    }
}

impl Drop for CapGuard {
    fn drop(&mut self) {
        OUTPUT_CAP.set(self.0);
    }
}

// SAFETY: `CappedStr` is lifted exactly as a `string`: its lowered form, ABI and type check
// are those of `WasmStr` (which are those of `str`), and its lift hands the very same
// arguments to wasmtime's own lifts of `String` and `WasmStr`, which check alignment,
// bounds and encoding. It only chooses which of the two to run. It is never lowered.
unsafe impl ComponentType for CappedStr {
    type Lower = <WasmStr as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <WasmStr as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <WasmStr as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: see `ComponentType` above.
unsafe impl Lift for CappedStr {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        CappedStr::lift(
            cx,
            src[1].get_u32(),
            |cx| <String as Lift>::linear_lift_from_flat(cx, ty, src),
            |cx| <WasmStr as Lift>::linear_lift_from_flat(cx, ty, src),
        )
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        // A string in memory is a (pointer, length) pair of little-endian u32s.
        let len = bytes
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| wasmtime::format_err!("string pair out of bounds"))?;
        CappedStr::lift(
            cx,
            len,
            |cx| <String as Lift>::linear_lift_from_memory(cx, ty, bytes),
            |cx| <WasmStr as Lift>::linear_lift_from_memory(cx, ty, bytes),
        )
    }
}

/// A string argument of a host function, still in guest memory, with the length the guest
/// declared: a host function compares [`GuestStr::units`] with its cap before it reads a
/// byte, so an oversized argument is refused without being decoded or copied (a UTF-16
/// guest's string is decoded into a copy only once it is known to be within the cap).
pub(crate) struct GuestStr {
    text: WasmStr,
    units: usize,
}

impl GuestStr {
    /// The declared length in the guest's code units (bytes for UTF-8; never more than the
    /// UTF-8 bytes it decodes to).
    pub(crate) fn units(&self) -> usize {
        self.units
    }

    /// The string (borrowed from guest memory for UTF-8 guests).
    pub(crate) fn to_str<'a>(
        &self,
        store: impl Into<wasmtime::StoreContext<'a, State>>,
    ) -> wasmtime::Result<std::borrow::Cow<'a, str>> {
        self.text.to_str(store)
    }
}

// SAFETY: lifted exactly as a `string`, by wasmtime's own lift of `WasmStr` (which checks
// alignment and bounds); the length is read from the same (pointer, length) pair that
// lift reads. Never lowered.
unsafe impl ComponentType for GuestStr {
    type Lower = <WasmStr as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <WasmStr as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <WasmStr as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: see `ComponentType` above.
unsafe impl Lift for GuestStr {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let units = code_units(src[1].get_u32());
        let text = <WasmStr as Lift>::linear_lift_from_flat(cx, ty, src)?;
        Ok(GuestStr { text, units })
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let len = bytes
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| wasmtime::format_err!("string pair out of bounds"))?;
        let text = <WasmStr as Lift>::linear_lift_from_memory(cx, ty, bytes)?;
        Ok(GuestStr {
            text,
            units: code_units(len),
        })
    }
}

/// The code units of a declared string length: the top bit tags UTF-16 in the
/// `latin1+utf16` encoding.
fn code_units(len: u32) -> usize {
    (len & !(1 << 31)) as usize
}

/// `outcome` of the WIT, with capped strings.
#[derive(ComponentType, Lift)]
#[component(variant)]
pub(crate) enum RawOutcome {
    #[component(name = "outputs")]
    Outputs(CappedStr),
    #[component(name = "prevent-update")]
    PreventUpdate,
}

/// `callback-error` of the WIT, with capped strings.
#[derive(ComponentType, Lift)]
#[component(variant)]
pub(crate) enum RawCallbackError {
    #[component(name = "invalid-input")]
    InvalidInput(CappedStr),
    #[component(name = "failed")]
    Failed(CappedStr),
}

/// `app-info` of the WIT, with capped strings.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct RawInfo {
    pub(crate) title: CappedStr,
    #[component(name = "sdk-version")]
    pub(crate) sdk_version: CappedStr,
}

/// The `app` exports of a compiled component, found once at load.
pub(crate) struct Exports {
    info: ComponentExportIndex,
    layout: ComponentExportIndex,
    dependencies: ComponentExportIndex,
    run_callback: ComponentExportIndex,
}

impl Exports {
    /// The exports of `component`'s `app` interface, of whichever WIT version it exports
    /// (whose types `DashboardPre` checked), and that version's export name.
    pub(crate) fn find(
        component: &wasmtime::component::Component,
    ) -> crate::Result<(Exports, &'static str)> {
        let (app, version) = crate::imports::APP_EXPORTS
            .iter()
            .find_map(|name| Some((component.get_export_index(None, name)?, *name)))
            .ok_or_else(|| missing(crate::imports::APP_EXPORTS[0]))?;
        let find = |name: &str| {
            component
                .get_export_index(Some(&app), name)
                .ok_or_else(|| missing(name))
        };
        let exports = Exports {
            info: find("info")?,
            layout: find("layout")?,
            dependencies: find("dependencies")?,
            run_callback: find("run-callback")?,
        };
        Ok((exports, version))
    }
}

fn missing(name: &str) -> crate::Error {
    crate::Error::InvalidComponent {
        reason: format!("it does not export `{name}`"),
    }
}

/// `info`, `layout` and `dependencies` of `instance`, in that order, under one cap.
pub(crate) fn statics(
    store: &mut Store<State>,
    instance: &Instance,
    exports: &Exports,
    cap: usize,
) -> wasmtime::Result<(RawInfo, CappedStr, CappedStr)> {
    let _cap = CapGuard::set(cap);
    let info = call::<RawInfo>(store, instance, &exports.info)?;
    let layout = call::<CappedStr>(store, instance, &exports.layout)?;
    let dependencies = call::<CappedStr>(store, instance, &exports.dependencies)?;
    Ok((info, layout, dependencies))
}

/// Calls the parameterless export `export` of `instance`, typed `() -> T`.
fn call<T: ComponentType + Lift + 'static>(
    store: &mut Store<State>,
    instance: &Instance,
    export: &ComponentExportIndex,
) -> wasmtime::Result<T> {
    let func = instance
        .get_func(&mut *store, export)
        .ok_or_else(|| wasmtime::format_err!("the instance lacks an `app` export"))?;
    let (result,) = func.typed::<(), (T,)>(&*store)?.call(&mut *store, ())?;
    Ok(result)
}

/// What `run-callback` returns.
pub(crate) type RunCallbackResult = Result<RawOutcome, RawCallbackError>;

/// Calls `run-callback` of `instance`; strings longer than `cap` come back as
/// [`CappedStr::TooLarge`], uncopied.
pub(crate) fn run_callback(
    store: &mut Store<State>,
    instance: &Instance,
    exports: &Exports,
    id: &str,
    request: &str,
    cap: usize,
) -> wasmtime::Result<RunCallbackResult> {
    let func = instance
        .get_func(&mut *store, exports.run_callback)
        .ok_or_else(|| wasmtime::format_err!("the instance lacks `run-callback`"))?;
    // Checked against the WIT when the component was loaded, so this cannot fail; it is
    // a walk over a few type nodes.
    let typed = func.typed::<(&str, &str), (RunCallbackResult,)>(&*store)?;
    let _cap = CapGuard::set(cap);
    let (result,) = typed.call(&mut *store, (id, request))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_cap_only_the_bounds_are_checked() {
        let _cap = CapGuard::set(10);
        let lifted = CappedStr::lift(
            (),
            11,
            |()| panic!("copied"),
            |()| Err(wasmtime::format_err!("bounds")),
        );
        assert!(lifted.is_err(), "the bounds check still runs");
        let tagged = (1 << 31) | 4;
        let lifted = CappedStr::lift(
            (),
            tagged,
            |()| Ok("abcd".to_string()),
            |()| panic!("not copied"),
        );
        assert!(matches!(lifted, Ok(CappedStr::Fits(_))));
        assert!(matches!(
            CappedStr::Fits("x".repeat(11)).into_string(10),
            Err(crate::Error::OutputTooLarge {
                size: 11,
                limit: 10
            })
        ));
    }

    #[test]
    fn the_cap_is_restored_after_the_call() {
        {
            let _cap = CapGuard::set(5);
            assert_eq!(OUTPUT_CAP.with(Cell::get), 5);
        }
        assert_eq!(OUTPUT_CAP.with(Cell::get), usize::MAX);
    }
}
