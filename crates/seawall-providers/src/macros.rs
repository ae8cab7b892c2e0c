/// Declares a provider's dialect: a cheap-to-clone handle on its configuration (what every
/// adapter clone shares), and the `Adapter::new(http, config)` constructor for it.
macro_rules! dialect {
    ($(#[$doc:meta])* $dialect:ident, $config:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $dialect(std::sync::Arc<$config>);

        impl $dialect {
            /// The dialect for `config`.
            pub fn new(config: $config) -> Self {
                Self(std::sync::Arc::new(config))
            }

            /// The configuration.
            pub fn config(&self) -> &$config {
                &self.0
            }
        }

        impl<S> crate::Adapter<$dialect, S> {
            /// An adapter for `config` over the HTTP service `http`.
            pub fn new(http: S, config: $config) -> Self {
                Self::with_dialect($dialect::new(config), http)
            }
        }
    };
}
