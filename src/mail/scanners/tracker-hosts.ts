/** One entry of {@link TRACKER_HOSTS}. */
export interface TrackerHost {
  /** Registrable domain or subdomain; it matches itself and every subdomain. */
  domain: string;
  /** Who runs it, for display. */
  vendor: string;
}

/**
 * Hosts that exist to count opens or clicks of e-mail, or to feed ad/analytics profiles from them.
 * A URL is flagged when its host is one of these or a subdomain of one (so `u123.ct.sendgrid.net`
 * matches `ct.sendgrid.net`).
 *
 * Deliberately left out, because they also serve plain content and would flag ordinary mail:
 * Mailchimp's `mcusercontent.com` (image hosting; its tracking goes through `list-manage.com`),
 * link shorteners such as `t.co` and `bit.ly`, and providers that track on the customer's own
 * CNAME (Mailgun's `email.<customer>` hosts are only caught through `mailgun.org` targets).
 */
export const TRACKER_HOSTS: readonly TrackerHost[] = [
  // Ad and analytics networks
  { domain: 'google-analytics.com', vendor: 'Google Analytics' },
  { domain: 'doubleclick.net', vendor: 'Google Marketing Platform' },
  { domain: 'googleadservices.com', vendor: 'Google Ads' },
  { domain: 'omtrdc.net', vendor: 'Adobe Analytics' },
  { domain: 'api.mixpanel.com', vendor: 'Mixpanel' },
  // Bulk e-mail services: open pixels and click redirects
  { domain: 'list-manage.com', vendor: 'Mailchimp' },
  { domain: 'mandrillapp.com', vendor: 'Mandrill (Mailchimp)' },
  { domain: 'ct.sendgrid.net', vendor: 'SendGrid' },
  { domain: 'mailgun.org', vendor: 'Mailgun' },
  { domain: 'sparkpostmail.com', vendor: 'SparkPost' },
  { domain: 'awstrack.me', vendor: 'Amazon SES' },
  { domain: 'pstmrk.it', vendor: 'Postmark' },
  { domain: 'mjt.lu', vendor: 'Mailjet' },
  { domain: 'sendibt2.com', vendor: 'Brevo (Sendinblue)' },
  { domain: 'sendibt3.com', vendor: 'Brevo (Sendinblue)' },
  { domain: 'rs6.net', vendor: 'Constant Contact' },
  { domain: 'createsend.com', vendor: 'Campaign Monitor' },
  { domain: 'klaviyomail.com', vendor: 'Klaviyo' },
  { domain: 'klclick.com', vendor: 'Klaviyo' },
  { domain: 'convertkit-mail.com', vendor: 'ConvertKit' },
  { domain: 'convertkit-mail2.com', vendor: 'ConvertKit' },
  { domain: 'track.customer.io', vendor: 'Customer.io' },
  { domain: 'via.intercom.io', vendor: 'Intercom' },
  // Marketing automation suites
  { domain: 'track.hubspot.com', vendor: 'HubSpot' },
  { domain: 'hubspotlinks.com', vendor: 'HubSpot' },
  { domain: 'exacttarget.com', vendor: 'Salesforce Marketing Cloud' },
  { domain: 'exct.net', vendor: 'Salesforce Marketing Cloud' },
  { domain: 'pardot.com', vendor: 'Salesforce Pardot' },
  { domain: 'eloqua.com', vendor: 'Oracle Eloqua' },
  // Per-user read receipts (sales tools, mail client extensions)
  { domain: 'mailtrack.io', vendor: 'Mailtrack' },
  { domain: 'mailfoogae.appspot.com', vendor: 'Streak' },
  { domain: 't.yesware.com', vendor: 'Yesware' },
  { domain: 'r.superhuman.com', vendor: 'Superhuman' },
  { domain: 'bl-1.com', vendor: 'Bananatag' },
  { domain: 'emltrk.com', vendor: 'Litmus Email Analytics' },
];

const BY_DOMAIN = new Map(TRACKER_HOSTS.map((entry) => [entry.domain, entry]));

/**
 * Finds the tracker entry for a host name: the host itself or its nearest listed parent domain.
 * Case and a trailing dot are ignored. Returns null for hosts not listed.
 */
export function matchTrackerHost(host: string): TrackerHost | null {
  let candidate = host.toLowerCase().replace(/\.$/, '');
  for (;;) {
    const entry = BY_DOMAIN.get(candidate);
    if (entry !== undefined) return entry;
    const dot = candidate.indexOf('.');
    if (dot === -1) return null;
    candidate = candidate.slice(dot + 1);
  }
}
