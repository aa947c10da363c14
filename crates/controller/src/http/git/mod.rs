//! The git endpoints: smart HTTP served by git's own `git http-backend`
//! (`cgi`), and the internal endpoint the pre-receive hook asks to build a
//! push (`build`). The hook's own side is `crate::git`.

pub mod build;
pub mod cgi;
