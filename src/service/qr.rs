//! QR codes for terminals: provisioning URIs (`otpauth://`) and OCRA challenges shown offline.

use super::error::ServiceError;

/// `text` as a QR code drawn with Unicode half blocks (two modules per character cell), dark
/// modules as spaces on a light quiet zone so that it scans on dark terminals.
pub fn terminal_qr(text: &str) -> Result<String, ServiceError> {
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| ServiceError::InvalidArgs(format!("cannot encode a QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn qr_has_rows() {
        let text = super::terminal_qr("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP").unwrap();
        assert!(text.lines().count() > 10);
        assert!(super::terminal_qr(&"x".repeat(5000)).is_err());
    }
}
