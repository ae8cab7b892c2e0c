pub(crate) mod messages;
