//! PSKC export of stored tokens for the Tokens interface: seeds opened with the store key only
//! to be written encrypted (never in plain text) into the PSKC document.

use crate::otp::pskc::{PskcProtection, PskcToken};
use crate::otp::token::{Serial, TokenKind as OtpKind, TokenParams};
use crate::otp::{HashAlg, OcraSuite};
use crate::tokens::{TokenError, TokenKind, TokenService};

/// Exports `serials` as a PSKC document protected by `protection`.
pub fn export(
    service: &TokenService,
    serials: &[String],
    protection: &PskcProtection,
) -> Result<String, TokenError> {
    if matches!(protection, PskcProtection::Plain) {
        return Err(TokenError::InvalidRequest(
            "a PSKC export is always encrypted".into(),
        ));
    }
    let store = service.store();
    let mut tokens = Vec::with_capacity(serials.len());
    for serial in serials {
        let info = service
            .token(serial)?
            .ok_or_else(|| TokenError::NotFound(format!("no token {serial}")))?;
        let record = store
            .token_by_serial(serial)?
            .ok_or_else(|| TokenError::NotFound(format!("no token {serial}")))?;
        let seed = store.open_seed(&record)?;
        let kind = match info.kind {
            TokenKind::Hotp => OtpKind::ResponseOnlyHotp,
            TokenKind::Totp => OtpKind::ResponseOnlyTotp,
            TokenKind::ChallengeResponse | TokenKind::Signature => {
                let suite: OcraSuite = info.suite.as_deref().unwrap_or_default().parse()?;
                if info.kind == TokenKind::Signature {
                    OtpKind::Signature { suite }
                } else {
                    OtpKind::ChallengeResponse { suite }
                }
            }
        };
        let parsed: Serial = serial.parse()?;
        let mut params = TokenParams::new(parsed, kind);
        params.digits = info.digits;
        params.alg = HashAlg::from_name(&info.algorithm).unwrap_or(HashAlg::Sha1);
        params.step = info.period.max(1);
        params.issuer = info.issuer.clone();
        params.label = info.label.clone();
        params.owner = info.owner.clone();
        tokens.push(PskcToken {
            package_index: 0,
            key_id: Some(serial.clone()),
            params,
            secret: seed,
            counter: info.counter,
            drift_steps: info.drift,
            pin: None,
            user_id: info.owner.clone(),
            manufacturer: Some("keygate".into()),
            valid_from: None,
            valid_to: None,
        });
    }
    let mut random_failed = false;
    let mut fill = |buf: &mut [u8]| {
        if getrandom::fill(buf).is_err() {
            random_failed = true;
        }
    };
    let xml = crate::otp::pskc::write(&tokens, protection, &mut fill);
    if random_failed {
        return Err(TokenError::Random("getrandom failed".into()));
    }
    Ok(xml?)
}
