"""The Zabbix frontend in headless Chromium (Debian's chromium and chromium-driver, driven by Selenium): pages as an
operator sees them, refused when they show a PHP or locale error, saved as PNG screenshots."""
import shutil
import time
from pathlib import Path
from typing import Optional

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
# What the frontend writes on a page when it is broken rather than when our data is: PHP's own messages, and the
# one a missing en_US.UTF-8 locale puts on every page (and into every graph instead of the chart).
PAGE_ERRORS = ("Locale for language", "Fatal error", "Parse error", "Warning: ", "Notice: ", "Deprecated: ",
               "Uncaught ", "Stack trace:")
WIDTH, HEIGHT = 1600, 1000  # the width the issue measured item names at


class PageError(AssertionError):
    """A frontend page that shows a PHP or locale error, or does not show what it should."""


def available() -> Optional[str]:
    """None when screenshots can be taken here, else why not."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        return f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is missing: pip install -e '.[test]'"
    return None


class Frontend:
    """One logged-in browser on a Zabbix frontend."""

    def __init__(self, url: str, user: str, password: str, width: int = WIDTH, height: int = HEIGHT):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         f"--window-size={width},{height}", "--hide-scrollbars", "--lang=en-US"):
            options.add_argument(argument)
        # The driver is Debian's: Selenium must not look for (or download) another.
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(60)
        self.url = url.rstrip("/") + "/"
        self._log_in(user, password)

    def __enter__(self) -> "Frontend":
        return self

    def __exit__(self, *exc) -> None:
        self.driver.quit()

    def _log_in(self, user: str, password: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.get(self.url + "index.php")
        self.driver.find_element(By.ID, "name").send_keys(user)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.driver.find_element(By.ID, "enter").click()
        self._wait(lambda: "index.php" not in self.driver.current_url, "the login to go through")
        self.check()

    def _wait(self, condition, what: str, seconds: float = 30) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if condition():
                return
            time.sleep(0.2)
        raise PageError(f"waited {seconds:g} s for {what} on {self.driver.current_url}")

    def text(self) -> str:
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.TAG_NAME, "body").text

    def check(self) -> str:
        """The page's text, refused if the frontend shows an error of its own."""
        text = self.text()
        found = [e for e in PAGE_ERRORS if e in text]
        if found:
            line = next(line for line in text.splitlines() if found[0] in line)
            raise PageError(f"{self.driver.current_url} shows {line!r}")
        return text

    def open(self, page: str, expect: str = "", seconds: float = 30) -> str:
        """Open page (relative to the frontend's URL) and wait until its text holds expect and its widgets
        have stopped loading; returns its text."""
        from selenium.webdriver.common.by import By

        self.driver.get(self.url + page)

        def ready() -> bool:
            loading = self.driver.find_elements(By.CSS_SELECTOR, ".is-loading, .preloader")
            return expect in self.text() and not any(e.is_displayed() for e in loading)
        self._wait(ready, f"{expect!r}" if expect else "the page")
        time.sleep(0.5)  # graphs draw after their widget stops loading
        return self.check()

    def collapse_filters(self) -> None:
        """Fold the page's filter and time selector, so that a screenshot shows the data (the frontend remembers
        them open or folded per user: only an open one is clicked)."""
        self.driver.execute_script("""
            for (const css of ['.tabfilter-item-label.selected.expanded .tabfilter-item-link',
                               'li.ui-tabs-active > a.btn-time']) {
                document.querySelectorAll(css).forEach((e) => e.click());
            }""")
        time.sleep(0.5)

    def hover(self, css: str) -> None:
        """Move the pointer over the first element matching css (to open its hint box)."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        element = self.driver.find_element(By.CSS_SELECTOR, css)
        ActionChains(self.driver).move_to_element(element).perform()
        time.sleep(0.5)

    def click(self, css: str) -> None:
        from selenium.webdriver.common.by import By
        self.driver.find_element(By.CSS_SELECTOR, css).click()
        time.sleep(0.5)

    def save(self, path: Path) -> Path:
        """A PNG of the whole visible window."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.png")
        self.driver.save_screenshot(str(tmp))
        shutil.move(str(tmp), path)
        return path
