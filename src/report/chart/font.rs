//! The charts' one font, DejaVu Sans (Bitstream Vera licence, assets/fonts/), compiled into
//! the binary and registered with plotters' ab_glyph text support under the generic
//! "sans-serif" family. PNG text is rasterised from it; the SVGs name "sans-serif", so a
//! browser uses its own sans-serif face with near-identical metrics. Nothing depends on the
//! fonts installed on the machine (CI runners and servers often have none).
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The family every chart's text uses (plotters' `FontFamily::SansSerif` spelled out).
pub const FAMILY: &str = "sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Register the embedded font with plotters (once per process; later calls are free).
pub fn ensure_registered() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, DEJAVU_SANS)
            .map_err(|_| "the embedded DejaVu Sans font (assets/fonts/DejaVuSans.ttf) does not parse".to_string())
    })
    .clone()
    .map_err(Error::invalid)
}

/// The embedded font for laying out PNG text directly (the charts' raster module).
pub fn font_ref() -> std::result::Result<ab_glyph::FontRef<'static>, String> {
    ab_glyph::FontRef::try_from_slice(DEJAVU_SANS)
        .map_err(|_| "the embedded DejaVu Sans font (assets/fonts/DejaVuSans.ttf) does not parse".to_string())
}
