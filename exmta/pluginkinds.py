"""
The kinds of plugin exmta has, and the one way each is found and made:
transport agents (L{exmta.agents}), credential checkers (L{exmta.auth}) and
delivery agents (L{exmta.deliver}).

A plugin is an object in the L{exmta.plugins} dropin package that provides
its kind's factory interface and has the C{name} org.ini uses for it,
compared without regard to case.  Every kind reports the same mistakes the
same way, as an L{exmta.errors.ConfigError} naming the line:

  - a name no installed plugin has, listing those that are;
  - settings the factory refused: an L{exmta.errors.SettingError} points at
    its key in the plugin's section, any other C{ValueError} at the
    section; with no section, at where the plugin was named, saying which
    section to write.

docs/plugins.rst tells plugin authors the same.
"""

from dataclasses import dataclass

from exmta.interfaces import IAgentFactory, ICheckerFactory, IDeliveryAgentFactory


def byName(factories):
    """
    @param factories: plugin factories, each with a C{name}.
    @return: a dict of C{factories} by lower-case name.
    """
    return {factory.name.lower(): factory for factory in factories}


@dataclass(frozen=True)
class PluginKind:
    """
    One kind of plugin.

    @ivar interface: the factory interface its plugins provide.
    @ivar noun: what one is called in messages, e.g. C{transport agent}.
    @ivar section: the org.ini section type of one's settings, e.g.
        C{TransportAgent} for C{[TransportAgent Name]}.
    @ivar makerName: the name of the factory's method that makes one from
        its settings, e.g. C{makeAgent}.
    """

    interface: type
    noun: str
    section: str
    makerName: str

    def installed(self):
        """
        @return: a dict of every plugin of this kind in L{exmta.plugins},
            by lower-case name.
        """
        from twisted.plugin import getPlugins

        import exmta.plugins

        return byName(getPlugins(self.interface, exmta.plugins))

    def find(self, factories, name, origin, key=None):
        """
        @param factories: the plugins to choose from, by lower-case name.
        @param origin: the L{exmta.config.model.Origin} of the section
            naming the plugin, and C{key} the key that does (L{None} when
            the section's own name does).
        @return: the factory of C{factories} named C{name}.
        @raise exmta.errors.ConfigError: there is none.
        """
        factory = factories.get(name.lower())
        if factory is None:
            raise origin.error(
                f"no {self.noun} plugin is named {name!r}; installed: "
                + (", ".join(sorted(f.name for f in factories.values())) or "none"),
                key,
            )
        return factory

    def make(self, factory, section, origin, key, *arguments):
        """
        Make a plugin of this kind from its settings.

        @param section: the plugin's settings section, or L{None} when
            org.ini has none; its keys, as written, are the settings.
        @param origin: where the plugin was named, and C{key} the key
            naming it, blamed when the factory refuses to work without a
            section.
        @param arguments: what the factory's method takes after the
            settings.
        @return: what the factory made.
        @raise exmta.errors.ConfigError: the factory refused the settings.
        """
        settings = {} if section is None else dict(section.settings)
        try:
            return getattr(factory, self.makerName)(settings, *arguments)
        except ValueError as error:
            if section is not None:
                raise section.origin.refused(error) from None
            raise origin.error(
                f"{error}; give it in a [{self.section} {factory.name}] section", key
            ) from None


TRANSPORT_AGENT = PluginKind(IAgentFactory, "transport agent", "TransportAgent", "makeAgent")
CREDENTIAL_CHECKER = PluginKind(ICheckerFactory, "credential checker", "CredentialChecker", "makeChecker")
DELIVERY_AGENT = PluginKind(IDeliveryAgentFactory, "delivery agent", "DeliveryAgent", "makeDeliveryAgent")
