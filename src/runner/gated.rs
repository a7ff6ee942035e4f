//! Reconciler policy: does a failed vLLM's log say the model is gated (so a retry waits for a
//! token change instead of backing off)?

/// Whether vLLM's output shows Hugging Face refusing access to the model (a gated or private
/// repository, or a token that is missing or invalid), as opposed to any other failure.
pub fn looks_gated(log_tail: &str) -> bool {
    let text = log_tail.to_ascii_lowercase();
    const NEEDLES: &[&str] = &[
        "gatedrepoerror",
        "gated repo",
        "cannot access gated",
        "401 client error",
        "403 client error",
        "401 unauthorized",
        "403 forbidden",
        "invalid credentials",
        "invalid user token",
        "must be authenticated",
        "repositorynotfounderror",
    ];
    NEEDLES.iter().any(|n| text.contains(n))
        || text.split("access to model").skip(1).any(|rest| {
            rest.lines()
                .next()
                .is_some_and(|l| l.contains("is restricted"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gated_messages_are_recognized() {
        let gated = [
            "huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo \
             for url https://huggingface.co/meta-llama/Llama-3.1-8B/resolve/main/config.json.\n\
             Access to model meta-llama/Llama-3.1-8B is restricted. You must have access to it \
             and be authenticated to access it. Please log in.",
            "OSError: You are trying to access a gated repo.\nMake sure to have access to it",
            "requests.exceptions.HTTPError: 403 Client Error: Forbidden for url: https://huggingface.co/api/models/x",
            "huggingface_hub.errors.HfHubHTTPError: 401 Client Error: Unauthorized for url: ... \
             Invalid credentials in Authorization header",
            "Access to model mistralai/Mistral-7B is restricted and you are not in the authorized list.",
            "RepositoryNotFoundError: 401 Client Error.",
        ];
        for g in gated {
            assert!(looks_gated(g), "{g}");
        }
        let not_gated = [
            "",
            "INFO Starting vLLM API server on http://127.0.0.1:20001",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            "ValueError: The model's max seq len (32768) is larger than the maximum number of tokens",
            "fake crash",
            "Access to model files granted\nload took 3s, memory is restricted to 0.9",
        ];
        for n in not_gated {
            assert!(!looks_gated(n), "{n}");
        }
    }
}
