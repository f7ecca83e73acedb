//! GitLab's offset pagination: `page` and `per_page` in, `X-*` headers and a
//! `Link` header out.

use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};

pub const DEFAULT_PER_PAGE: u64 = 20;
pub const MAX_PER_PAGE: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// From 1.
    pub page: u64,
    pub per_page: u64,
}

impl Page {
    /// Reads `page` and `per_page`. Values that are not whole numbers are
    /// invalid (400); out-of-range ones are brought into range as GitLab does
    /// (`page` at least 1, `per_page` from 1 to 100).
    pub fn from_request(request: &Request) -> ApiResult<Page> {
        let number = |name: &str| -> ApiResult<Option<i64>> {
            match request.query_param(name) {
                None | Some("") => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| ApiError::InvalidParams(format!("{name} is invalid"))),
            }
        };
        let page = number("page")?.unwrap_or(1).max(1) as u64;
        let per_page = match number("per_page")? {
            None => DEFAULT_PER_PAGE,
            Some(n) if n < 1 => DEFAULT_PER_PAGE,
            Some(n) => (n as u64).min(MAX_PER_PAGE),
        };
        Ok(Page { page, per_page })
    }

    /// The items of this page.
    pub fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = self
            .page
            .saturating_sub(1)
            .saturating_mul(self.per_page)
            .min(items.len() as u64) as usize;
        let end = (start as u64 + self.per_page).min(items.len() as u64) as usize;
        &items[start..end]
    }

    fn total_pages(&self, total: u64) -> u64 {
        total.div_ceil(self.per_page).max(1)
    }

    /// Answers 200 with this page's `items` of a listing of `total`, and the
    /// pagination headers. Links keep every query parameter of the request
    /// and use `public_url`.
    pub fn respond(
        &self,
        items: &impl serde::Serialize,
        total: u64,
        request: &Request,
        public_url: &str,
    ) -> Response {
        let response = Response::json(200, items);
        let pages = self.total_pages(total);
        let next = (self.page < pages).then(|| self.page + 1);
        let prev = (self.page > 1).then(|| (self.page - 1).min(pages));
        let shown = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        let link = |page: u64, rel: &str| {
            format!(
                "<{}>; rel=\"{rel}\"",
                page_url(request, public_url, page, self.per_page)
            )
        };
        let mut links = Vec::new();
        if let Some(prev) = prev {
            links.push(link(prev, "prev"));
        }
        if let Some(next) = next {
            links.push(link(next, "next"));
        }
        links.push(link(1, "first"));
        links.push(link(pages, "last"));
        response
            .header("x-page", self.page.to_string())
            .header("x-per-page", self.per_page.to_string())
            .header("x-next-page", shown(next))
            .header("x-prev-page", shown(prev))
            .header("x-total", total.to_string())
            .header("x-total-pages", pages.to_string())
            .header("link", links.join(", "))
    }
}

/// The request's URL with `page` (and `per_page`) set, every other
/// parameter kept in order.
fn page_url(request: &Request, public_url: &str, page: u64, per_page: u64) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in &request.query {
        if name != "page" && name != "per_page" {
            query.append_pair(name, value);
        }
    }
    query.append_pair("page", &page.to_string());
    query.append_pair("per_page", &per_page.to_string());
    format!("{public_url}{}?{}", request.path, query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn page(query: &str) -> ApiResult<Page> {
        Page::from_request(&Request::new(Method::Get, &format!("/x?{query}"), vec![]))
    }

    #[test]
    fn parameters_are_read_and_brought_into_range() {
        assert_eq!(
            page("").unwrap(),
            Page {
                page: 1,
                per_page: 20
            }
        );
        assert_eq!(
            page("page=3&per_page=50").unwrap(),
            Page {
                page: 3,
                per_page: 50
            }
        );
        assert_eq!(
            page("page=-4&per_page=1000").unwrap(),
            Page {
                page: 1,
                per_page: 100
            }
        );
        assert_eq!(page("per_page=0").unwrap().per_page, 20);
        assert!(
            matches!(page("page=x"), Err(ApiError::InvalidParams(m)) if m == "page is invalid")
        );
        assert!(page("per_page=1.5").is_err());
    }

    #[test]
    fn slices_past_the_end_are_empty() {
        let items: Vec<u32> = (1..=45).collect();
        let p = |page| Page { page, per_page: 20 };
        assert_eq!(p(1).slice(&items), &items[..20]);
        assert_eq!(p(3).slice(&items), &items[40..]);
        assert!(p(4).slice(&items).is_empty());
        assert!(p(u64::MAX).slice(&items).is_empty());
    }

    #[test]
    fn headers_and_links_follow_gitlab() {
        let request = Request::new(
            Method::Get,
            "/api/v4/projects/1/packages?sort=desc&page=2&per_page=20",
            vec![],
        );
        let response = Page {
            page: 2,
            per_page: 20,
        }
        .respond(&[0u8; 0], 45, &request, "https://r.example");
        let h = |name| response.header_value(name).unwrap().to_string();
        assert_eq!(h("x-page"), "2");
        assert_eq!(h("x-next-page"), "3");
        assert_eq!(h("x-prev-page"), "1");
        assert_eq!(h("x-total"), "45");
        assert_eq!(h("x-total-pages"), "3");
        assert_eq!(
            h("link"),
            "<https://r.example/api/v4/projects/1/packages?sort=desc&page=1&per_page=20>; rel=\"prev\", \
             <https://r.example/api/v4/projects/1/packages?sort=desc&page=3&per_page=20>; rel=\"next\", \
             <https://r.example/api/v4/projects/1/packages?sort=desc&page=1&per_page=20>; rel=\"first\", \
             <https://r.example/api/v4/projects/1/packages?sort=desc&page=3&per_page=20>; rel=\"last\""
        );
        let last = Page {
            page: 3,
            per_page: 20,
        }
        .respond(&[0u8; 0], 45, &request, "");
        assert_eq!(last.header_value("x-next-page"), Some(""));
    }
}
